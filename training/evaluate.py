"""Evaluate an exported model with onnxruntime: accuracy, per-class metrics, PNGs, throughput."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from training.calibrate import ECE_BINS, plot_reliability, reliability
from training.plots import plot_confusion_matrix, plot_digit_grid

log = logging.getLogger(__name__)
MAX_GRID = 120  # digits in misclassified.png


def ort_session(onnx_path: Path, threads: int = 2) -> ort.InferenceSession:
    """A CPU session with an explicit thread count, as the service runs it."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])


def predict_probabilities(session: ort.InferenceSession, images: np.ndarray, batch: int = 500) -> np.ndarray:
    """uint8 images (N, 28, 28) -> probabilities (N, 10), names read from the session."""
    inp = session.get_inputs()[0].name
    out = next(o.name for o in session.get_outputs() if "prob" in o.name)
    x = images.astype(np.float32)[:, None] / 255.0  # (N, 1, 28, 28) float32 in [0, 1]
    return np.concatenate([session.run([out], {inp: x[i : i + batch]})[0] for i in range(0, len(x), batch)])


def classification_report(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    """Accuracy, per-class precision and recall (index = digit), confusion matrix (true x predicted)."""
    cm = np.zeros((10, 10), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    diag = np.diag(cm).astype(float)
    return {
        "accuracy": float(diag.sum() / cm.sum()),
        "per_class_recall": (diag / np.maximum(cm.sum(1), 1)).round(6).tolist(),
        "per_class_precision": (diag / np.maximum(cm.sum(0), 1)).round(6).tolist(),
        "confusion_matrix": cm.tolist(),
        "errors": int(cm.sum() - diag.sum()),
    }


def throughput(
    session: ort.InferenceSession, batch_sizes: tuple[int, ...] = (1, 64, 256), seconds: float = 1.0
) -> dict[int, float]:
    """In-process images/s per batch size: best of 3 timed windows after a warm-up."""
    inp = session.get_inputs()[0].name
    rng = np.random.default_rng(0)
    result = {}
    for bs in batch_sizes:
        x = rng.random((bs, 1, 28, 28), dtype=np.float32)
        for _ in range(3):
            session.run(None, {inp: x})
        best = 0.0
        for _ in range(3):
            n, t0 = 0, time.perf_counter()
            while (elapsed := time.perf_counter() - t0) < seconds / 3:
                session.run(None, {inp: x})
                n += bs
            best = max(best, n / elapsed)
        result[bs] = round(best, 1)
    return result


def evaluate_onnx(
    onnx_path: Path,
    images: np.ndarray,
    labels: np.ndarray,
    out_dir: Path | None = None,
    threads: int = 2,
    measure_speed: bool = True,
) -> dict:
    """Full report on the given test images; with out_dir, writes report.json and the PNGs there."""
    session = ort_session(onnx_path, threads)
    probs = predict_probabilities(session, images)
    pred = probs.argmax(1)
    report = classification_report(labels, pred)
    wrong = np.flatnonzero(pred != labels)
    report["misclassified"] = [
        dict(index=int(i), true=int(labels[i]), predicted=int(pred[i]), confidence=round(float(probs[i].max()), 4))
        for i in wrong
    ]
    report["calibration"] = reliability(probs, labels)  # ECE and the reliability diagram's bins
    if measure_speed:
        report["threads"] = threads
        report["images_per_second"] = throughput(session)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        meta_path = onnx_path.with_name("metadata.json")
        name = json.loads(meta_path.read_text())["version"] if meta_path.exists() else onnx_path.parent.name
        plot_confusion_matrix(
            np.array(report["confusion_matrix"]),
            out_dir / "confusion_matrix.png",
            title=f"{name}: {100 * report['accuracy']:.2f}% on {len(labels)} test images",
        )
        shown = wrong[np.argsort(-probs[wrong].max(1))][:MAX_GRID]  # the most confident mistakes first
        caps = [f"true {labels[i]} -> {pred[i]}\n{probs[i].max():.2f}" for i in shown]
        title = f"{name}: {len(wrong)} misclassified test digits"
        if len(shown) < len(wrong):
            title += f" ({len(shown)} most confident shown)"
        plot_digit_grid(images[shown], caps, out_dir / "misclassified.png", title=title)
        plot_reliability(
            {name: report["calibration"]},
            out_dir / "reliability.png",
            title=f"{len(labels):,} test images, {ECE_BINS} bins",
        )
        (out_dir / "report.json").write_text(json.dumps(report, indent=2))
    return report


def format_report(report: dict) -> str:
    """A short human-readable summary for the CLI."""
    lines = [f"accuracy {100 * report['accuracy']:.2f}% ({report['errors']} errors)", "digit  precision  recall"]
    for d in range(10):
        prec, rec = report["per_class_precision"][d], report["per_class_recall"][d]
        lines.append(f"{d:5d}  {100 * prec:8.2f}%  {100 * rec:6.2f}%")
    if "calibration" in report:
        cal = report["calibration"]
        lines.append(
            f"expected calibration error {100 * cal['ece']:.2f}% (mean confidence {100 * cal['mean_confidence']:.2f}%)"
        )
    if "images_per_second" in report:
        speeds = ", ".join(f"batch {bs}: {ips:,.0f}" for bs, ips in report["images_per_second"].items())
        lines.append(f"onnxruntime images/s with {report['threads']} threads: {speeds}")
    return "\n".join(lines)
