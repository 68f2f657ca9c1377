"""TorchServe's custom handler: every form part (or the raw body) of each request is one PNG.

TorchServe hands `handle` the requests it batched (up to the model's batchSize within
maxBatchDelay); all their images go through one onnxruntime call. A request with one part answers
one prediction, a request with several a list.
"""

from __future__ import annotations

import os

import numpy as np

from benchmarks.peers.common import Model, answers, stack

_model: Model | None = None


def handle(data: list[dict] | None, context) -> list | None:  # context: ts.context.Context
    global _model
    if _model is None:
        _model = Model(os.path.join(context.system_properties["model_dir"], "model.onnx"))
    if data is None:
        return None
    requests = [[bytes(v) for v in row.values()] for row in data]  # (name -> bytes) per request
    probs = _model.probabilities(stack([png for pngs in requests for png in pngs]))
    split = np.split(probs, np.cumsum([len(pngs) for pngs in requests])[:-1])
    return [answers(p)[0] if len(pngs) == 1 else answers(p) for p, pngs in zip(split, requests, strict=True)]
