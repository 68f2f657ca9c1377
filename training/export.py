"""ONNX export that checks itself against PyTorch, and the metadata.json that travels with it."""

from __future__ import annotations

import datetime as dt
import logging
import subprocess
import warnings
from pathlib import Path
from typing import Any, cast

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn.functional as F
from torch import nn

from contract import sha256_file, version_name, write_metadata
from training.calibrate import Calibrated, fit_temperature, low_confidence_threshold, nll, reliability
from training.checkpoint import model_from_checkpoint
from training.config import TrainConfig
from training.data import load_split, to_float, train_val_split
from training.detector import WithDetector, fit_threshold, load_detector
from training.evaluate import evaluate_onnx
from training.head import WithHead, load_head
from training.models import ModelConfig, count_parameters

log = logging.getLogger(__name__)

INPUT_NAME = "pixels"
OUTPUT_NAMES = ("logits", "probabilities")
SCORE_NAME = "digit_score"  # with a detector: (N,) in [0, 1], "this frame is one handwritten digit"
DEFAULT_OPSET = 18
PARITY_TOLERANCE = 1e-4


class ExportError(RuntimeError):
    """The exported graph is invalid or disagrees with PyTorch: nothing is written to models/."""


class WithProbabilities(nn.Module):
    """Adds softmax probabilities beside the logits, so clients need no post-processing."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.model(pixels)  # (N, 10)
        return logits, torch.softmax(logits, dim=1)


def code_revision() -> str:
    """git commit of the code that exported the model, '+dirty' when uncommitted changes exist."""
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "training"], capture_output=True, text=True).stdout
        return rev + ("+dirty" if dirty.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def graph_of(model: nn.Module) -> tuple[nn.Module, list[str]]:
    """The module that becomes the graph, and its output names: a detector brings its score."""
    if isinstance(model, WithDetector | WithHead):
        return model.eval(), [*OUTPUT_NAMES, SCORE_NAME]
    return WithProbabilities(model.eval()), list(OUTPUT_NAMES)


def export_onnx(model: nn.Module, path: Path, opset: int = DEFAULT_OPSET) -> None:
    """A dynamic batch: pixels (N, 1, 28, 28) -> logits, probabilities (N, 10) [, digit_score (N,)]."""
    wrapped, names = graph_of(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapped,
            (torch.zeros(2, 1, 28, 28),),
            str(path),
            input_names=[INPUT_NAME],
            output_names=names,
            dynamic_shapes={"pixels": {0: torch.export.Dim("N")}},
            opset_version=opset,
            dynamo=True,
            external_data=False,
            verbose=False,
        )


def check_export(model: nn.Module, path: Path, images: np.ndarray) -> float:
    """onnx.checker plus PyTorch-vs-onnxruntime parity on a fixed batch; raises ExportError on failure."""
    try:
        onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    except Exception as exc:
        raise ExportError(f"onnx.checker rejected {path}: {exc}") from None
    x = images.astype(np.float32)[:, None] / 255.0  # (N, 1, 28, 28) in [0, 1]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    wrapped, names = graph_of(model)
    ort_outs = session.run(names[1:], {INPUT_NAME: x})  # probabilities [, digit_score]
    with torch.no_grad():
        torch_outs = wrapped(torch.from_numpy(x))[1:]
    diff = max(float(np.abs(o - t.numpy()).max()) for o, t in zip(ort_outs, torch_outs, strict=True))
    if not diff < PARITY_TOLERANCE:
        raise ExportError(f"onnxruntime and PyTorch disagree on {path}: max |dp| = {diff:.2e} >= {PARITY_TOLERANCE}")
    return diff


@torch.no_grad()
def _logits(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 28, 28) -> (N, 10) float32 logits, in batches."""
    return torch.cat([model(to_float(images[i : i + 1000])).float() for i in range(0, len(images), 1000)])


def calibrate(model: nn.Module, tc: TrainConfig, data_root: Path, test_x: np.ndarray, test_y: np.ndarray) -> dict:
    """Fit the temperature on the run's own validation split; report NLL and ECE before and after on test."""
    images, labels = load_split(data_root, train=True)
    splits = train_val_split(images, labels, tc.val_size, tc.split_seed)
    info: dict = {"method": "temperature scaling", "temperature": 1.0,
                  "logits": "divided by the temperature: softmax(logits) == probabilities"}  # fmt: skip
    raw = _logits(model.eval(), torch.from_numpy(test_x))
    if len(splits.val_x):
        val_logits = _logits(model, splits.val_x)
        t = fit_temperature(val_logits, splits.val_y)
        val_y = splits.val_y.numpy()
        where = f"validation ({len(val_y):,} images, split_seed {tc.split_seed})"
        info.update(temperature=round(t, 4), fitted_on=where,
                    val_nll_before=nll(F.softmax(val_logits, 1).numpy(), val_y),
                    val_nll_after=nll(F.softmax(val_logits / t, 1).numpy(), val_y),
                    low_confidence=low_confidence_threshold(F.softmax(val_logits / t, 1).numpy(), val_y))  # fmt: skip
    else:
        info["fitted_on"] = "nothing: the run held out no validation images (T = 1)"
    before = reliability(F.softmax(raw, 1).numpy(), test_y)
    after = reliability(F.softmax(raw / info["temperature"], 1).numpy(), test_y)
    info.update(
        test_ece_before=before["ece"],
        test_ece=after["ece"],
        test_mean_confidence_before=before["mean_confidence"],
        test_mean_confidence=after["mean_confidence"],
    )
    return info


def _from_exported(onnx_path: Path, data_root: Path) -> tuple[nn.Module, ModelConfig, TrainConfig, dict]:
    """An exported version back as (model, configs, the checkpoint fields metadata kept)."""
    import json

    from training.warmstart import config_beside, model_from_onnx

    meta = json.loads((onnx_path.parent / "metadata.json").read_text())
    tc = TrainConfig.from_dict(meta["train_config"])
    images, labels = load_split(data_root, train=True)
    train_x = train_val_split(images, labels, tc.val_size, tc.split_seed).train_x[:4096]
    model = model_from_onnx(onnx_path, to_float(train_x)).eval()
    history = [{"epoch_seconds": t, "device": meta.get("train_device")} for t in meta.get("epoch_seconds", [])]
    state = {"history": history, "epoch": meta.get("best_epoch"), "best_val_acc": meta.get("best_val_accuracy"),
             "data": meta.get("dataset", {}), "exported_from": meta["version"],
             "trained_at": meta.get("trained_at")}  # fmt: skip
    return model, config_beside(onnx_path), tc, state


def detector_metadata(onnx_path: Path, tc: TrainConfig, data_root: Path, det_state: dict) -> dict:
    """metadata.json's digit_detector: the threshold fitted on the exported graph's validation scores."""
    images, labels = load_split(data_root, train=True)
    val_x = train_val_split(images, labels, tc.val_size, tc.split_seed).val_x.numpy()
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (val_scores,) = session.run([SCORE_NAME], {INPUT_NAME: val_x.astype(np.float32)[:, None] / 255.0})
    validation = det_state["validation"]
    if "head_config" in det_state:  # a head on the trunk: its threshold keeps `keep` of every validation digit kind
        keep = det_state["head_config"]["keep"]
        threshold = det_state["threshold"]
        fitted_on = (
            f"validation: the {len(val_x):,} training-set digits the classifier never trained on (split_seed "
            f"{tc.split_seed}), as written, augmented, as uploads, at low resolution, and printed digits in the "
            f"validation font families; the highest score that keeps {100 * keep:g}% of each of those kinds "
            f"(keeps {100 * float((val_scores >= threshold).mean()):.2f}% of the validation digits as written)"
        )
        extra = {
            "design": "head on the classifier's frozen trunk",
            "calibration": det_state["calibration"],
            "digit_kinds": det_state["digit_kinds"],
            "font_splits": det_state["font_splits"],
        }
        config = det_state["head_config"]
    else:
        keep = det_state["detector_config"]["keep"]
        threshold = fit_threshold(val_scores, keep)
        fitted_on = (
            f"validation: the {len(val_x):,} training-set digits the classifier never trained on "
            f"(split_seed {tc.split_seed}); the score that keeps {100 * keep:g}% of them"
        )
        extra, config = {}, det_state["detector_config"]
    return {
        "digit_detector": {
            "output": SCORE_NAME,
            "threshold": round(threshold, 6),
            "keeps": keep,
            "fitted_on": fitted_on,
            "flags_below": "digit_score < threshold: not one digit",
            "trained_kinds": det_state["trained_kinds"],
            "validation": {k: validation[k] for k in ("auroc", "flagged", "flagged_by_kind", "epoch")},
            "trained_beside": det_state["classifier_version"],
            "config": config,
            "epoch_seconds": [h["epoch_seconds"] for h in det_state["history"]],
            **extra,
        }
    }


def export_checkpoint(
    checkpoint: Path,
    out_dir: Path,
    data_root: Path,
    opset: int = DEFAULT_OPSET,
    temperature: bool = True,
    detector: Path | None = None,
) -> dict:
    """Checkpoint -> out_dir/model.onnx + out_dir/metadata.json (with full test-set metrics).

    With temperature (the default), T is fitted on the run's validation split and folded into the
    graph: its logits are the model's divided by T, its probabilities their softmax. A model.onnx
    in place of the checkpoint re-exports that version (e.g. to calibrate a model already served).
    A detector checkpoint (`mnist train-detector`) trained beside this classifier adds the
    digit_score output, with its threshold fitted on the same validation digits.
    """
    det, det_state, is_head = _detector_for(checkpoint, detector) if detector is not None else (None, None, False)
    if checkpoint.suffix == ".onnx":
        model, mc, tc, state = _from_exported(checkpoint, data_root)
    else:
        model, mc, tc, state = model_from_checkpoint(checkpoint)
    out_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = out_dir / "model.onnx"
    test_x, test_y = (t.numpy() for t in load_split(data_root, train=False))
    calibration = calibrate(model, tc, data_root, test_x, test_y) if temperature else None
    t = calibration["temperature"] if calibration else 1.0
    if det is not None:
        model = (WithHead if is_head else WithDetector)(cast(nn.Sequential, model), det, t).eval()
    elif t != 1.0:
        model = Calibrated(model, t).eval()
    export_onnx(model, onnx_path, opset)
    parity = check_export(model, onnx_path, test_x[:256])  # a fixed batch: the first 256 test digits
    report = evaluate_onnx(onnx_path, test_x, test_y, measure_speed=False)
    digest = sha256_file(onnx_path)
    history = state.get("history", [])
    metadata = {
        "version": version_name(mc.arch, digest),
        "architecture": mc.arch,
        "parameters": count_parameters(model),
        "opset": opset,
        "sha256": digest,
        **_graph_spec(with_score=det is not None),
        **_test_report(report, parity),
        "model_config": mc.to_dict(),
        "train_config": tc.to_dict(),
        "epochs_run": len(history),
        "best_epoch": state.get("epoch"),
        "best_val_accuracy": state.get("best_val_acc"),
        "epoch_seconds": [h["epoch_seconds"] for h in history],
        **({"temperature": calibration["temperature"], "calibration": calibration} if calibration else {}),
        **({"re_exported_from": state["exported_from"]} if "exported_from" in state else {}),
        **(detector_metadata(onnx_path, tc, data_root, det_state) if det_state is not None else {}),
        **_provenance(checkpoint, state, history),
    }
    write_metadata(out_dir, metadata)  # refused here if it breaks the contract the service reads
    return metadata


def _detector_for(checkpoint: Path, detector: Path) -> tuple[Any, dict[str, Any], bool]:
    """The detector checkpoint (a digit head or a detector CNN, and which), refused unless it was
    trained beside exactly this model.onnx."""
    is_head = "head_config" in torch.load(detector, map_location="cpu", weights_only=False)
    det, det_state = load_head(detector) if is_head else load_detector(detector)
    if checkpoint.suffix != ".onnx" or sha256_file(checkpoint) != det_state["classifier_sha256"]:
        raise ExportError(
            f"{detector} was trained beside {det_state['classifier_onnx']} (sha256 "
            f"{det_state['classifier_sha256'][:8]}), not {checkpoint}: export that model.onnx with it"
        )
    return det, det_state, is_head


def _graph_spec(with_score: bool) -> dict[str, Any]:
    """metadata.json's input, outputs and labels: what the service reads the graph by."""
    return {
        "input": {
            "name": INPUT_NAME,
            "shape": ["N", 1, 28, 28],
            "dtype": "float32",
            "range": [0.0, 1.0],
            "polarity": "white-on-black",
            "preprocessing": "MNIST-style: digit fit in 20x20 keeping aspect ratio, centred by mass in 28x28",
        },
        "outputs": {
            "logits": {"name": OUTPUT_NAMES[0], "shape": ["N", 10]},
            "probabilities": {"name": OUTPUT_NAMES[1], "shape": ["N", 10]},
            **({"digit_score": {"name": SCORE_NAME, "shape": ["N"]}} if with_score else {}),
        },
        "labels": [str(d) for d in range(10)],
    }


def _test_report(report: dict[str, Any], parity: float) -> dict[str, Any]:
    """The exported graph on the full test set, and how far it is from PyTorch on a fixed batch."""
    return {
        "test_accuracy": report["accuracy"],
        "test_errors": report["errors"],
        "per_class_recall": report["per_class_recall"],
        "per_class_precision": report["per_class_precision"],
        "misclassified_test_indices": [m["index"] for m in report["misclassified"]],
        "parity_max_abs_diff": parity,
    }


def _provenance(checkpoint: Path, state: dict[str, Any], history: list[dict[str, Any]]) -> dict[str, Any]:
    """Where and when it was trained, on which data, by which code and torch."""
    trained_at = state.get("trained_at") or dt.datetime.fromtimestamp(checkpoint.stat().st_mtime, dt.UTC).isoformat(
        timespec="seconds"
    )
    return {
        "train_device": history[-1]["device"] if history else None,
        "dataset": state.get("data", {}),
        "code_revision": code_revision(),
        "trained_at": trained_at,
        "exported_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "torch_version": torch.__version__,
    }
