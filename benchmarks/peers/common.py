"""What every peer does per image, written once: PNG -> (N, 1, 28, 28) float32 -> onnxruntime -> JSON."""

from __future__ import annotations

import argparse
import io
import os

import numpy as np
import onnxruntime as ort
from PIL import Image

READY = "/readyz"  # the readiness route of the peers that let us name one


class Model:
    """One onnxruntime session with one intra-op thread: a peer runs one per worker process."""

    def __init__(self, path: str, threads: int = 1) -> None:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name  # names from the graph, never hard-coded
        self.output = os.environ.get("PEER_OUTPUT", "probabilities")
        self.probabilities(np.zeros((1, 1, 28, 28), np.float32))  # warm: first run allocates

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """(N, 1, 28, 28) float32 in [0, 1] -> (N, 10) float32."""
        return self.session.run([self.output], {self.input: x})[0]


def decode(png: bytes) -> np.ndarray:
    """The peers' minimal preprocessing: one 28x28 greyscale PNG -> (1, 28, 28) float32 in [0, 1]."""
    with Image.open(io.BytesIO(png)) as img:
        return np.asarray(img.convert("L"), dtype=np.float32)[None] / 255.0


def stack(pngs: list[bytes]) -> np.ndarray:
    """N PNGs -> (N, 1, 28, 28) float32."""
    return np.stack([decode(p) for p in pngs])


def answers(probs: np.ndarray) -> list[dict]:
    """(N, 10) probabilities -> what the project's /predict answers per image (less model_version)."""
    digits = probs.argmax(axis=1)
    return [
        {"digit": int(d), "confidence": float(p[d]), "probabilities": p.round(6).tolist()}
        for d, p in zip(digits, probs, strict=True)
    ]


def arguments(description: str) -> argparse.ArgumentParser:
    """The flags every launch file takes; each adds its own settings."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, required=True, help="listen on 127.0.0.1:PORT")
    parser.add_argument("--model", required=True, help="the ONNX file (bench_peers reads models/served.json)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes, one intra-op thread each")
    return parser
