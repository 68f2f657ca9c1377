"""A model's digit probabilities and digit score, read straight from its ONNX graph.

The benchmark and the regression test judge the exported graph itself, beside (not through) the
service's Classifier: names and the threshold come from metadata.json, as the contract says.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnxruntime as ort

from contract import ModelFiles, read_metadata


@dataclass(frozen=True)
class Scored:
    """What the graph answers for N frames."""

    probabilities: np.ndarray  # (N, 10) float32
    digit_score: np.ndarray | None  # (N,) float32 in [0, 1]; None: the model has no detector

    @property
    def confidence(self) -> np.ndarray:
        """(N,) the top probability: the classifier's own confidence, the baseline detector."""
        return self.probabilities.max(axis=1) if len(self.probabilities) else np.zeros(0, np.float32)


class ScoredModel:
    """One onnxruntime session over a model folder's graph, run for probabilities and digit_score."""

    def __init__(self, files: ModelFiles, threads: int = 2) -> None:
        read_metadata(files)  # the contract's checks and the sha256
        meta: dict[str, Any] = json.loads(files.metadata.read_text())
        self.files = files
        self.metadata = meta
        self.version: str = meta["version"]
        self.test_accuracy = float(meta["test_accuracy"])
        self.detector: dict[str, Any] | None = meta.get("digit_detector")
        self.threshold = float(self.detector["threshold"]) if self.detector else None
        self._input: str = meta["input"]["name"]
        score = meta["outputs"]["digit_score"]["name"] if self.detector else None
        self._outputs: list[str] = [meta["outputs"]["probabilities"]["name"], *([score] if score else [])]
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(files.onnx), options, providers=["CPUExecutionProvider"])

    def __call__(self, frames: np.ndarray, batch: int = 1024) -> Scored:
        """(N, 28, 28) float32 in [0, 1], white on black -> probabilities (N, 10) and digit_score (N,)."""
        x = np.ascontiguousarray(frames, np.float32).reshape(-1, 1, 28, 28)  # (N, 1, 28, 28)
        parts = [self.session.run(self._outputs, {self._input: x[i : i + batch]}) for i in range(0, len(x), batch)]
        probs = np.concatenate([p[0] for p in parts]) if parts else np.zeros((0, 10), np.float32)
        if len(self._outputs) == 1:
            return Scored(probs, None)
        score = np.concatenate([p[1] for p in parts]).reshape(-1) if parts else np.zeros(0, np.float32)
        return Scored(probs, score)
