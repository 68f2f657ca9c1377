"""Our own Prometheus metrics for watching a deployed model drift (served at /metrics)."""

from __future__ import annotations

import numpy as np
from prometheus_client import Counter, Histogram

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
REJECTED = Counter(
    name="mnist_rejected_requests",
    documentation="Requests refused with a 4xx, by endpoint and status",
    labelnames=["endpoint", "status"],
)


def record(probs: np.ndarray, low_confidence: float, is_digit: np.ndarray | None = None) -> None:
    """Count one batch of (N, 10) probabilities (and (N,) is-digit flags) into the drift metrics."""
    if probs.shape[0] == 0:
        return
    if is_digit is not None:
        flagged = int(is_digit.size - np.count_nonzero(is_digit))
        if flagged:
            NON_DIGITS.inc(flagged)
    best = probs.argmax(axis=1)
    confidence = probs.max(axis=1)
    for digit, count in enumerate(np.bincount(best, minlength=10)):
        if count:
            PREDICTIONS.labels(digit=str(digit)).inc(int(count))
    for value in confidence.tolist():
        CONFIDENCE.observe(value)
    low = int((confidence < low_confidence).sum())
    if low:
        LOW_CONFIDENCE.inc(low)


def rejected(endpoint: str, status: int) -> None:
    """Count one refused request."""
    REJECTED.labels(endpoint=endpoint, status=str(status)).inc()
