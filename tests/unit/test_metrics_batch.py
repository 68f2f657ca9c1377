"""service.server.metrics counts a batch exactly as prometheus_client would, value by value."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.exposition import generate_latest

from service.server.metrics import CONFIDENCE_BUCKETS, observe_many


def _histogram() -> tuple[Histogram, CollectorRegistry]:
    registry = CollectorRegistry()
    return Histogram("h", "h", buckets=CONFIDENCE_BUCKETS, registry=registry), registry


@pytest.mark.parametrize(
    "values",
    [
        [],
        [0.5],
        [0.3, 0.5, 0.6, 0.999, 1.0],  # on the bounds: a bound is inclusive
        [0.0, 0.31, 0.95, 0.9999, 1.0, 1.5, -1.0],
        [float("nan"), 0.7],
        np.random.default_rng(0).random(1000).tolist(),
    ],
)
def test_observe_many_equals_observe_one_by_one(values: list[float]) -> None:
    confidences = np.asarray(values, dtype=np.float32)  # as the model answers
    one, one_registry = _histogram()
    for value in confidences.tolist():
        one.observe(value)
    many, many_registry = _histogram()
    observe_many(many, confidences)

    # created timestamps differ; everything else must match (sums to float rounding)
    def samples(registry: CollectorRegistry) -> dict[str, float]:
        return {
            s.name + str(sorted(s.labels.items())): s.value
            for metric in registry.collect()
            for s in metric.samples
            if not s.name.endswith("_created")
        }

    got, want = samples(many_registry), samples(one_registry)
    assert got.keys() == want.keys()
    for key in want:
        assert got[key] == pytest.approx(want[key], nan_ok=True), key
    assert generate_latest(many_registry)  # still renders
