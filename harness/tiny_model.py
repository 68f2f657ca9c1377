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


def tiny_onnx(seed: int = 0, classes: int = 10) -> bytes:
    """pixels (N,1,28,28) -> logits = flatten @ W, probabilities = softmax(logits)."""
    w = np.random.default_rng(seed).normal(0, 0.1, (784, classes))
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["pixels"], ["flat"], axis=1),
            helper.make_node("MatMul", ["flat", "W"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        ],
        "tiny",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["N", 1, 28, 28])],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", classes]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", classes]),
        ],
        [numpy_helper.from_array(w.astype(np.float32), "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model.SerializeToString()


def write_model_dir(
    models_dir: Path, *, serve: bool = True, seed: int = 0, onnx_bytes: bytes | None = None, **overrides: Any
) -> str:
    """models_dir/<version>/{model.onnx, metadata.json} (+ served.json); returns the version.

    onnx_bytes replaces the graph (its sha256 and version follow it, so only the graph itself is
    wrong); overrides replace top-level metadata keys, e.g. a wrongly named input.
    """
    data = tiny_onnx(seed) if onnx_bytes is None else onnx_bytes
    sha = hashlib.sha256(data).hexdigest()
    version = version_name("tiny", sha)
    folder = models_dir / version
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.onnx").write_bytes(data)
    metadata = {
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
    (folder / "metadata.json").write_text(json.dumps({**metadata, **overrides}))
    if serve:
        write_served(models_dir, Served(served=version))
    return version
