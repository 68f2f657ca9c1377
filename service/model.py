"""Find the served ONNX model, check it against its metadata, and run it with onnxruntime."""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np
import onnxruntime as ort

from contract import ContractError, Metadata, ModelFiles, read_metadata, resolve

__all__ = ["Classifier", "ModelError", "ModelFiles", "choose_providers", "load_metadata", "resolve", "validate"]

logger = logging.getLogger(__name__)

# A model that breaks the contract is not servable: one error type, one line naming the file.
ModelError = ContractError


def load_metadata(files: ModelFiles) -> dict[str, Any]:
    """metadata.json as written (GET /model answers with it), after the contract's checks."""
    read_metadata(files)
    raw: dict[str, Any] = json.loads(files.metadata.read_text())
    return raw


def _shape_fits(declared: list[int | str], actual: list[Any]) -> bool:
    """Does the graph's shape match metadata's? Symbolic dimensions match any name."""
    return len(declared) == len(actual) and all(
        isinstance(d, str) or not isinstance(a, int) or d == a for d, a in zip(declared, actual, strict=True)
    )


def validate(files: ModelFiles) -> Metadata:
    """The whole model checked once, in the serving process before any worker starts.

    metadata.json against the contract and the ONNX bytes; the graph loads in onnxruntime; its
    input and outputs carry metadata's names, dtypes and shapes; and a known input (blank and
    full frames) comes back as finite (2, 10) probabilities that sum to 1. A worker would
    otherwise fail the same way, be restarted, and fail again, forever.
    """
    meta = read_metadata(files)
    where = f"{files.onnx}"
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    try:
        session = ort.InferenceSession(str(files.onnx), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own types for a bad graph
        raise ModelError(f"onnxruntime cannot load {where}: {str(exc).splitlines()[0]}") from None
    graph_in = {i.name: i for i in session.get_inputs()}
    graph_out = {o.name: o for o in session.get_outputs()}
    wanted = [(meta.input, graph_in, "input")] + [
        (spec, graph_out, "output") for spec in (meta.outputs.logits, meta.outputs.probabilities)
    ]
    for spec, found, kind in wanted:
        node = found.get(spec.name)
        if node is None:
            raise ModelError(f"{where}: metadata names {kind} {spec.name!r}, the graph has {sorted(found)}")
        if node.type != "tensor(float)":
            raise ModelError(f"{where}: {kind} {spec.name!r} is {node.type}, metadata says {spec.dtype}")
        if not _shape_fits(spec.shape, list(node.shape)):
            raise ModelError(f"{where}: {kind} {spec.name!r} has shape {node.shape}, metadata says {spec.shape}")
    known = np.stack([np.zeros((1, 28, 28), np.float32), np.ones((1, 28, 28), np.float32)])  # (2, 1, 28, 28)
    try:
        (probs,) = session.run([meta.outputs.probabilities.name], {meta.input.name: known})
    except Exception as exc:
        raise ModelError(f"{where}: inference on a known input failed: {str(exc).splitlines()[0]}") from None
    probs = np.asarray(probs)  # (2, 10)
    sane = np.all(np.isfinite(probs)) and np.allclose(probs.sum(axis=-1), 1.0, atol=1e-3)
    if probs.shape != (2, len(meta.labels)) or not sane:
        raise ModelError(
            f"{where}: a known input gave {probs.shape} outputs, not (2, 10) finite probabilities that sum to 1"
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

    def __init__(self, files: ModelFiles, provider: str = "auto", threads: int = 1, spinning: bool = False) -> None:
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
            self.session = ort.InferenceSession(str(files.onnx), options, providers=choose_providers(provider))
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
            self.version,
            files.onnx,
            self.provider,
            threads,
        )

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        """(N, 28, 28) or (N, 1, 28, 28) float32 in [0, 1] -> (N, 10) float32 probabilities."""
        batch = np.ascontiguousarray(pixels, dtype=np.float32).reshape(-1, 1, 28, 28)
        if batch.shape[0] == 0:
            return np.zeros((0, len(self.labels)), np.float32)
        (probs,) = self.session.run([self.output_name], {self.input_name: batch})
        return np.asarray(probs)  # (N, 10)

    def warm_up(self) -> None:
        """One inference before /readyz says yes, so the first user pays no lazy init."""
        probs = self.probabilities(np.zeros((1, 28, 28), np.float32))
        if probs.shape != (1, len(self.labels)) or not np.all(np.isfinite(probs)):
            raise ModelError(f"warm-up inference returned {probs.shape}, non-finite or wrong")
