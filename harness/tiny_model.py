"""A tiny ONNX model that follows the models/ contract, for tests that need a model folder."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from contract import Served, version_name, write_served

# The tiny digit detector scores a frame by its mean ink alone: MNIST digits average 0.13 (99%
# of test digits lie in 0.05-0.25), a blank frame has none and a filled square about 0.5. So
# digit_score = sigmoid(SHARPNESS * (WIDTH^2 - (mean ink - CENTRE)^2)): above 0.5 for mean ink
# in (0.03, 0.27), near 0 for a blank-ish or a full-ink frame. Deterministic and simple.
INK_CENTRE, INK_WIDTH, INK_SHARPNESS = 0.15, 0.12, 400.0
DIGIT_THRESHOLD = 0.5


def tiny_digit_score(frames: np.ndarray) -> np.ndarray:
    """What the tiny detector answers: (N, 28, 28) or (N, 1, 28, 28) in [0, 1] -> (N,) float32."""
    ink = np.asarray(frames, np.float64).reshape(len(frames), -1).mean(axis=1)  # (N,)
    z = INK_SHARPNESS * (INK_WIDTH**2 - (ink - INK_CENTRE) ** 2)
    return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)


def tiny_onnx(seed: int = 0, classes: int = 10, detector: bool = False) -> bytes:
    """pixels (N,1,28,28) -> logits = flatten @ W, probabilities = softmax(logits), and with
    `detector` digit_score (N,) = tiny_digit_score(pixels)."""
    w = np.random.default_rng(seed).normal(0, 0.1, (784, classes))
    nodes = [
        helper.make_node("Flatten", ["pixels"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "W"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    outputs = [
        helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", classes]),
        helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", classes]),
    ]
    weights = [numpy_helper.from_array(w.astype(np.float32), "W")]
    if detector:
        nodes += [
            helper.make_node("ReduceMean", ["pixels", "ink_axes"], ["ink"], keepdims=0),  # (N,)
            helper.make_node("Sub", ["ink", "ink_centre"], ["ink_off"]),
            helper.make_node("Mul", ["ink_off", "ink_off"], ["ink_off2"]),
            helper.make_node("Sub", ["ink_width2", "ink_off2"], ["ink_margin"]),
            helper.make_node("Mul", ["ink_margin", "ink_sharpness"], ["ink_z"]),
            helper.make_node("Sigmoid", ["ink_z"], ["digit_score"]),
        ]
        outputs.append(helper.make_tensor_value_info("digit_score", TensorProto.FLOAT, ["N"]))
        weights += [
            numpy_helper.from_array(np.array([1, 2, 3], np.int64), "ink_axes"),
            numpy_helper.from_array(np.array(INK_CENTRE, np.float32), "ink_centre"),
            numpy_helper.from_array(np.array(INK_WIDTH**2, np.float32), "ink_width2"),
            numpy_helper.from_array(np.array(INK_SHARPNESS, np.float32), "ink_sharpness"),
        ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["N", 1, 28, 28])],
        outputs,
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model.SerializeToString()


def write_model_dir(
    models_dir: Path,
    *,
    serve: bool = True,
    seed: int = 0,
    onnx_bytes: bytes | None = None,
    detector: bool = False,
    digit_threshold: float = DIGIT_THRESHOLD,
    **overrides: Any,
) -> str:
    """models_dir/<version>/{model.onnx, metadata.json} (+ served.json); returns the version.

    onnx_bytes replaces the graph (its sha256 and version follow it, so only the graph itself is
    wrong); detector adds the digit_score output and its digit_detector metadata, with
    digit_threshold; overrides replace top-level metadata keys, e.g. a wrongly named input.
    """
    data = tiny_onnx(seed, detector=detector) if onnx_bytes is None else onnx_bytes
    sha = hashlib.sha256(data).hexdigest()
    version = version_name("tiny", sha)
    folder = models_dir / version
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.onnx").write_bytes(data)
    metadata: dict[str, Any] = {
        "version": version,
        "architecture": "tiny",
        "parameters": 7840,
        "opset": 18,
        "sha256": sha,
        "input": {
            "name": "pixels",
            "shape": ["N", 1, 28, 28],
            "dtype": "float32",
            "range": [0.0, 1.0],
            "polarity": "white-on-black",
        },
        "outputs": {
            "logits": {"name": "logits", "shape": ["N", 10]},
            "probabilities": {"name": "probabilities", "shape": ["N", 10]},
        },
        "labels": [str(i) for i in range(10)],
        "test_accuracy": 0.1,
        "per_class_recall": [0.1] * 10,
    }
    if detector:
        metadata["outputs"]["digit_score"] = {"name": "digit_score", "shape": ["N"]}
        metadata["digit_detector"] = {
            "output": "digit_score",
            "threshold": digit_threshold,
            "fitted_on": "nothing: mean ink, fixed by hand (harness/tiny_model.py)",
            "keeps": 0.99,
        }
    (folder / "metadata.json").write_text(json.dumps({**metadata, **overrides}))
    if serve:
        write_served(models_dir, Served(served=version))
    return version
