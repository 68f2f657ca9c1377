"""Find the served ONNX model, check it against its metadata, and run it with onnxruntime."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

logger = logging.getLogger(__name__)

REQUIRED_KEYS = ("version", "architecture", "sha256", "input", "outputs", "labels")


class ModelError(RuntimeError):
    """The model cannot be served (missing, corrupt, or not what its metadata says)."""


@dataclass(frozen=True)
class ModelFiles:
    """The two files of one model version."""

    onnx: Path
    metadata: Path


def resolve(models_dir: Path, version: str | None = None, path: Path | None = None) -> ModelFiles:
    """Which model to serve: an explicit path, else a version, else served.json's choice."""
    if path is not None:
        folder = path if path.is_dir() else path.parent
        onnx = path if path.is_file() else folder / "model.onnx"
    else:
        if version is None:
            served_json = models_dir / "served.json"
            try:
                version = json.loads(served_json.read_text())["served"]
            except FileNotFoundError:
                raise ModelError(
                    f"no {served_json}: train and promote a model first "
                    "(`make pipeline`), or set MNIST_MODEL_VERSION / MNIST_MODEL_PATH"
                ) from None
            except (ValueError, KeyError, TypeError) as exc:
                raise ModelError(f"{served_json} is not valid ({exc!r})") from None
        folder = models_dir / str(version)
        onnx = folder / "model.onnx"
    files = ModelFiles(onnx=onnx, metadata=folder / "metadata.json")
    for f in (files.onnx, files.metadata):
        if not f.is_file():
            raise ModelError(f"model file {f} is missing")
    return files


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_metadata(files: ModelFiles) -> dict[str, Any]:
    """metadata.json, checked for the keys the service relies on and against the ONNX bytes."""
    try:
        meta = json.loads(files.metadata.read_text())
    except ValueError as exc:
        raise ModelError(f"{files.metadata} is not valid JSON ({exc})") from None
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if missing:
        raise ModelError(f"{files.metadata} lacks keys {missing}")
    actual = sha256_of(files.onnx)
    if actual != meta["sha256"]:
        raise ModelError(
            f"{files.onnx} is corrupt or not the model its metadata describes: "
            f"sha256 {actual[:12]}... != {str(meta['sha256'])[:12]}... in {files.metadata.name}"
        )
    return meta


def choose_providers(requested: str) -> list[str]:
    """onnxruntime providers for auto|cpu|cuda; auto takes CUDA only where it is available."""
    available = ort.get_available_providers()
    has_cuda = "CUDAExecutionProvider" in available
    if requested == "cuda" and not has_cuda:
        raise ModelError(
            f"MNIST_PROVIDER=cuda but this onnxruntime has no CUDA provider ({available}); "
            "install the `gpu` extra (onnxruntime-gpu) or use auto/cpu"
        )
    if requested == "auto":
        logger.info("provider auto: %s", "CUDA" if has_cuda else f"CPU (no CUDA in {available})")
    if requested == "cuda" or (requested == "auto" and has_cuda):
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


class Classifier:
    """One onnxruntime session over the served model; names come from metadata, not code."""

    def __init__(
        self, files: ModelFiles, provider: str = "auto", threads: int = 1, spinning: bool = False
    ) -> None:
        self.metadata = load_metadata(files)
        self.version: str = self.metadata["version"]
        self.labels = [int(label) for label in self.metadata["labels"]]
        self.input_name: str = self.metadata["input"]["name"]
        self.output_name: str = self.metadata["outputs"]["probabilities"]["name"]
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Spinning idle inference threads steal the core that HTTP and decoding need between
        # batches (BENCHMARKS.md): off unless asked for.
        options.add_session_config_entry("session.intra_op.allow_spinning", str(int(spinning)))
        try:
            self.session = ort.InferenceSession(
                str(files.onnx), options, providers=choose_providers(provider)
            )
        except ModelError:
            raise
        except Exception as exc:  # onnxruntime raises its own types for a bad graph
            raise ModelError(f"onnxruntime cannot load {files.onnx}: {exc}") from None
        self.provider = self.session.get_providers()[0]
        names = {o.name for o in self.session.get_outputs()}
        inputs = {i.name for i in self.session.get_inputs()}
        if self.input_name not in inputs or self.output_name not in names:
            raise ModelError(
                f"graph has inputs {sorted(inputs)} and outputs {sorted(names)}, "
                f"metadata names {self.input_name!r} -> {self.output_name!r}"
            )
        logger.info(
            "model %s loaded from %s on %s (%d intra-op threads)",
            self.version, files.onnx, self.provider, threads,
        )

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        """(N, 28, 28) or (N, 1, 28, 28) float32 in [0, 1] -> (N, 10) float32 probabilities."""
        batch = np.ascontiguousarray(pixels, dtype=np.float32).reshape(-1, 1, 28, 28)
        if batch.shape[0] == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        (probs,) = self.session.run([self.output_name], {self.input_name: batch})
        return probs  # (N, 10)

    def warm_up(self) -> None:
        """One inference before /readyz says yes, so the first user pays no lazy init."""
        probs = self.probabilities(np.zeros((1, 28, 28), np.float32))
        if probs.shape != (1, len(self.labels)) or not np.all(np.isfinite(probs)):
            raise ModelError(f"warm-up inference returned {probs.shape}, non-finite or wrong")
