"""Our own Prometheus metrics for watching a deployed model drift (served at /metrics)."""

from __future__ import annotations

from typing import Any

import numpy as np
from prometheus_client import Counter, Histogram

from service.server.internals import histogram_parts

CONFIDENCE_BUCKETS = (0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999, 1.0)

# BentoML serves prometheus_client's registry (multi-process aware) at /metrics.
PREDICTIONS = Counter(
    name="mnist_predictions",
    documentation="Predictions served, by predicted digit (a shifting mix is a drift signal)",
    labelnames=["digit"],
)
CONFIDENCE = Histogram(
    name="mnist_prediction_confidence",
    documentation="Probability of the predicted digit",
    buckets=CONFIDENCE_BUCKETS,
)
LOW_CONFIDENCE = Counter(
    name="mnist_low_confidence_predictions",
    documentation="Predictions whose confidence is below MNIST_LOW_CONFIDENCE",
)
NON_DIGITS = Counter(
    name="mnist_non_digit_predictions",
    documentation="Images the digit detector flagged as not one handwritten digit (is_digit=false)",
)
# Each digit's child, looked up once (`labels()` takes a lock and builds a key per call) and
# only when first predicted, so /metrics shows the digits served, as before.
_PREDICTED: dict[int, Any] = {}
REJECTED = Counter(
    name="mnist_rejected_requests",
    documentation="Requests refused with a 4xx, by endpoint and status",
    labelnames=["endpoint", "status"],
)


def record(probs: np.ndarray, low_confidence: float, is_digit: np.ndarray | None = None) -> None:
    """Count one batch of (N, 10) probabilities (and (N,) is-digit flags) into the drift metrics."""
    if probs.shape[0] == 0:
        return
    best = probs.argmax(axis=1)
    record_digits(best, probs[np.arange(len(best)), best], low_confidence, is_digit)


def record_digits(
    best: np.ndarray, confidence: np.ndarray, low_confidence: float, is_digit: np.ndarray | None = None
) -> None:
    """Count (N,) digits read with their (N,) confidences (and is-digit flags) into the drift
    metrics: a number's digits, of which the reader's other candidates are no part."""
    if best.shape[0] == 0:
        return
    if is_digit is not None:
        flagged = int(is_digit.size - np.count_nonzero(is_digit))
        if flagged:
            NON_DIGITS.inc(flagged)
    for digit, count in enumerate(np.bincount(best, minlength=10).tolist()):
        if count:
            child = _PREDICTED.get(digit)
            if child is None:
                child = _PREDICTED[digit] = PREDICTIONS.labels(digit=str(digit))
            child.inc(count)
    observe_many(CONFIDENCE, confidence)
    low = int(np.count_nonzero(confidence < low_confidence))
    if low:
        LOW_CONFIDENCE.inc(low)


def observe_many(histogram: Histogram, values: np.ndarray) -> None:
    """`histogram.observe(v)` for each of `values`, one write per bucket touched instead of
    two per value (each a lock and an mmap write in multi-process mode).

    prometheus_client has no batch observe; this does what its `observe` does (a value falls
    in the first bucket whose upper bound is >= it; buckets are stored per bucket and summed at
    collection), tested against it in tests/unit/test_metrics_batch.py.
    """
    upper_bounds, total, buckets = histogram_parts(histogram)
    bounds = np.asarray(upper_bounds)  # ends with +Inf
    where = np.searchsorted(bounds, values, side="left")
    hits = np.bincount(where[where < len(bounds)], minlength=len(bounds))  # NaN: no bucket, as observe
    total.inc(float(np.sum(values, dtype=np.float64)))
    for i in np.flatnonzero(hits).tolist():
        buckets[i].inc(int(hits[i]))


def rejected(endpoint: str, status: int) -> None:
    """Count one refused request."""
    REJECTED.labels(endpoint=endpoint, status=str(status)).inc()
