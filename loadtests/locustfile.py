"""Locust users that send real MNIST test digits and check every answer against its label.

    MNIST_DATA_DIR=../shared/data python -m locust -f loadtests/locustfile.py --headless \\
        -u 8 -r 2 -t 60s --host http://127.0.0.1:3000 --guard-json results/guard.json

Every HTTP request is a row in locust's statistics (a malformed answer or a 4xx/5xx fails
it). Every digit in an answer is also logged as an `ANSWER` event with no response time
(so latency percentiles stay HTTP-only): a wrong digit is its own failure type, "wrong
digit: 4 read as 9", and accuracy under load shows in the report. When locust quits, the
run is judged (harness.checks.verdict) and the exit code is set. Accuracy is tallied per
process, so run it in one process (no --processes / distributed workers).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import gevent
import numpy as np
from locust import HttpUser, between, events, task
from locust.env import Environment

from harness.checks import (
    Budgets,
    MalformedAnswer,
    Tally,
    WrongDigit,
    check_batch,
    check_prediction,
    verdict,
)
from harness.mnist import data_dir, load_mnist
from harness.uploads import PHOTO_LIKE, Upload, render, sample_uploads

logger = logging.getLogger("loadtests")
ANSWER = "ANSWER"  # request_type of the per-digit events (not HTTP requests)


class _State:
    """What all users of this process share: test digits, photo pool, tallies, model metadata."""

    images: np.ndarray  # (10000, 28, 28) uint8, white on black
    labels: np.ndarray  # (10000,) int64
    photos: list[Upload]
    order: np.ndarray  # a seeded permutation of the test set: each digit is sent once first
    cursor = 0
    photo_cursor = 0
    clean = Tally(population=10_000)  # MNIST as-is: png28, batches, pixels
    photo = Tally()  # photo-like renderings, keyed by (kind, index)
    model: dict[str, Any] | None = None
    started = 0.0
    progress: gevent.Greenlet | None = None
    rng = np.random.default_rng()  # batch sizes; the digits themselves follow `order`

    @classmethod
    def next_indices(cls, n: int) -> np.ndarray:
        idx = cls.order[np.arange(cls.cursor, cls.cursor + n) % len(cls.order)]
        cls.cursor += n
        return idx

    @classmethod
    def next_photo(cls) -> Upload:
        upload = cls.photos[cls.photo_cursor % len(cls.photos)]
        cls.photo_cursor += 1
        return upload


@events.init_command_line_parser.add_listener
def _add_options(parser: Any) -> None:
    defaults = Budgets()
    group = parser.add_argument_group("MNIST guards (loadtests/locustfile.py)")
    group.add_argument(
        "--mnist-data-dir",
        default=str(data_dir()),
        help="folder holding MNIST/raw (default: $MNIST_DATA_DIR, else ./data)",
    )
    group.add_argument(
        "--p99-budget-ms",
        type=float,
        default=defaults.p99_ms,
        help="fail when p99 latency of HTTP requests is over this (default %(default)s)",
    )
    group.add_argument(
        "--max-accuracy-drop-pp",
        type=float,
        default=defaults.max_accuracy_drop_pp,
        help="fail when accuracy under load is this many points under metadata's test_accuracy (default %(default)s)",
    )
    group.add_argument(
        "--min-photo-accuracy",
        type=float,
        default=defaults.min_photo_accuracy,
        help="fail when photo-like uploads score under this (default %(default)s)",
    )
    group.add_argument(
        "--photo-pool-per-kind",
        type=int,
        default=30,
        help="photo-like uploads rendered per kind before the run (default %(default)s)",
    )
    group.add_argument(
        "--progress-every",
        type=float,
        default=10.0,
        help="seconds between progress lines, 0 for none (default %(default)s)",
    )
    group.add_argument("--guard-json", default="", help="write the run's summary and verdict here")
    group.add_argument("--seed", type=int, default=0, help="order of digits and renderings")


@events.init.add_listener
def _load_digits(environment: Environment, **_: Any) -> None:
    """Read the test set and pre-render the photo pool once, so users spend no CPU on it."""
    opts = environment.parsed_options
    if opts is None:  # locust used as a library without our options
        return
    _State.images, _State.labels = load_mnist(opts.mnist_data_dir, "test")
    _State.order = np.random.default_rng(opts.seed).permutation(len(_State.labels))
    t0 = time.perf_counter()
    _State.photos = list(
        sample_uploads(_State.images, _State.labels, PHOTO_LIKE, opts.photo_pool_per_kind, seed=opts.seed)
    )
    np.random.default_rng(opts.seed).shuffle(_State.photos)
    logger.info(
        "loaded 10000 test digits and rendered %d photo-like uploads in %.1f s",
        len(_State.photos),
        time.perf_counter() - t0,
    )
    # We blocked the event loop; refresh its clock or --run-time would end the test early.
    gevent.get_hub().loop.update_now()


def _answer_event(environment: Environment, name: str, expected: int, got: int) -> None:
    """Log one checked digit; a wrong one becomes a failure of its own type."""
    environment.events.request.fire(
        request_type=ANSWER,
        name=name,
        response_time=None,
        response_length=0,
        context={},
        exception=None if got == expected else WrongDigit(expected, got),
    )


class MnistClient(HttpUser):
    """Someone's app: mostly single digits (scans and phone photos), some batches and pixel arrays."""

    wait_time = between(0.2, 1.0)

    def on_start(self) -> None:
        with self.client.get("/model", name="/model", catch_response=True) as resp:
            try:
                model = resp.json()
                model["test_accuracy"] = float(model["test_accuracy"])
                model["version"] = str(model["version"])
            except (ValueError, KeyError, TypeError) as exc:
                resp.failure(MalformedAnswer(f"GET /model: {exc!r}"))
                return
            _State.model = _State.model or model

    @property
    def _version(self) -> str | None:
        return _State.model["version"] if _State.model else None

    def _check(self, resp: Any, route: str, kind: str, labels: list[int], keys: list[Any], tally: Tally) -> None:
        """Judge an HTTP answer (inside catch_response) and log each digit in it."""
        if resp.status_code != 200:
            resp.failure(f"HTTP {resp.status_code}: {resp.text[:200]}")
            return
        try:
            body = resp.json()
            if route == "/predict":
                digits = [check_prediction(body, self._version)]
            else:
                digits = check_batch(body, len(labels), self._version)
        except MalformedAnswer as exc:
            resp.failure(exc)
            return
        except ValueError as exc:  # the body is not JSON
            resp.failure(MalformedAnswer(f"not JSON: {exc}"))
            return
        resp.success()
        for key, expected, got in zip(keys, labels, digits, strict=True):
            tally.record(key, got == expected)
            _answer_event(self.environment, f"{kind} {route}", expected, got)

    @task(4)
    def predict_png(self) -> None:
        """A 28x28 PNG exactly as MNIST stores it, as a multipart upload."""
        (i,) = _State.next_indices(1)
        data, ctype = render(_State.images[i], "png28", _State.rng)
        with self.client.post(
            "/predict", files={"image": (f"{i}.png", data, ctype)}, name="/predict [png28]", catch_response=True
        ) as resp:
            self._check(resp, "/predict", "png28", [int(_State.labels[i])], [int(i)], _State.clean)

    @task(3)
    def predict_photo(self) -> None:
        """A photo-like upload; half as multipart, half as a raw image/* body."""
        up = _State.next_photo()
        if up.index % 2:
            kwargs: dict[str, Any] = {"files": {"image": (f"upload.{up.content_type[6:]}", up.data, up.content_type)}}
        else:
            kwargs = {"data": up.data, "headers": {"Content-Type": up.content_type}}
        with self.client.post("/predict", name="/predict [photo-like]", catch_response=True, **kwargs) as resp:
            self._check(resp, "/predict", up.kind, [up.label], [(up.kind, up.index)], _State.photo)

    @task(1)
    def predict_batch(self) -> None:
        """16-64 PNG digits in one multipart request."""
        idx = _State.next_indices(int(_State.rng.integers(16, 65)))
        files = [("images", (f"{i}.png", *render(_State.images[i], "png28", _State.rng))) for i in idx]
        with self.client.post("/predict_batch", files=files, name="/predict_batch", catch_response=True) as resp:
            self._check(resp, "/predict_batch", "png28", _State.labels[idx].tolist(), idx.tolist(), _State.clean)

    @task(2)
    def predict_pixels(self) -> None:
        """1-8 digits as JSON arrays, the way a canvas front end or a notebook sends them."""
        idx = _State.next_indices(int(_State.rng.integers(1, 9)))
        payload = {"images": _State.images[idx].tolist()}  # (n, 28, 28) uint8 0-255
        with self.client.post("/predict_pixels", json=payload, name="/predict_pixels", catch_response=True) as resp:
            self._check(resp, "/predict_pixels", "pixels", _State.labels[idx].tolist(), idx.tolist(), _State.clean)


def summary(environment: Environment) -> dict[str, Any]:
    """HTTP-only numbers (ANSWER events excluded) plus accuracy, for the verdict and README."""
    stats = environment.stats
    http = [e for (_, method), e in stats.entries.items() if method != ANSWER]
    requests = sum(e.num_requests for e in http)
    elapsed = max(time.time() - _State.started, 1e-9) if _State.started else 0.0
    model = _State.model or {}
    return {
        "users": environment.parsed_options.num_users if environment.parsed_options else None,
        "duration_s": round(elapsed, 1),
        "http_requests": requests,
        "http_failures": sum(e.num_failures for e in http),
        "req_per_s": round(requests / elapsed, 2) if elapsed else 0.0,
        "p50_ms": stats.total.get_response_time_percentile(0.5),
        "p95_ms": stats.total.get_response_time_percentile(0.95),
        "p99_ms": stats.total.get_response_time_percentile(0.99),
        "max_ms": stats.total.max_response_time,
        "per_route": {
            e.name: {
                "requests": e.num_requests,
                "failures": e.num_failures,
                "p50_ms": e.median_response_time,
                "p99_ms": e.get_response_time_percentile(0.99),
            }
            for e in http
        },
        "model_version": model.get("version"),
        "recorded_accuracy": model.get("test_accuracy"),
        "digits_checked": _State.clean.n,
        "accuracy": _State.clean.accuracy,
        "accuracy_upper_bound": _State.clean.upper_bound,
        "photo_uploads_checked": _State.photo.n,
        "photo_accuracy": _State.photo.accuracy,
        "photo_accuracy_by_kind": _photo_by_kind(),
    }


def _photo_by_kind() -> dict[str, float]:
    by_kind: dict[str, list[bool]] = {}
    for (kind, _), ok in _State.photo.answers.items():
        by_kind.setdefault(kind, []).append(ok)
    return {k: round(sum(v) / len(v), 4) for k, v in sorted(by_kind.items())}


def _progress(environment: Environment, every: float) -> None:
    while True:
        gevent.sleep(every)
        s = summary(environment)
        acc = f"{100 * s['accuracy']:.2f}%" if s["accuracy"] is not None else "-"
        logger.info(
            "%4.0fs %3d users | %6.1f req/s | p50 %4d ms p99 %5d ms | %d failed | accuracy %s on %d digits",
            s["duration_s"],
            environment.runner.user_count,
            s["req_per_s"],
            s["p50_ms"],
            s["p99_ms"],
            s["http_failures"],
            acc,
            s["digits_checked"],
        )


@events.test_start.add_listener
def _start(environment: Environment, **_: Any) -> None:
    _State.started = time.time()
    every = environment.parsed_options.progress_every if environment.parsed_options else 0
    if every > 0:
        _State.progress = gevent.spawn(_progress, environment, every)


@events.quitting.add_listener
def _judge(environment: Environment, **_: Any) -> None:
    """Set the exit code from the budgets, and write the summary for the runner and README."""
    if _State.progress is not None:
        _State.progress.kill()
    opts = environment.parsed_options
    budgets = Budgets(
        p99_ms=opts.p99_budget_ms,
        max_accuracy_drop_pp=opts.max_accuracy_drop_pp,
        min_photo_accuracy=opts.min_photo_accuracy,
    )
    s = summary(environment)
    reasons = verdict(
        budgets,
        http_requests=s["http_requests"],
        http_failures=s["http_failures"],
        p99_ms=s["p99_ms"],
        recorded_accuracy=s["recorded_accuracy"],
        clean=_State.clean,
        photo=_State.photo,
    )
    s.update(passed=not reasons, reasons=reasons, budgets=budgets.__dict__)
    if opts.guard_json:
        Path(opts.guard_json).write_text(json.dumps(s, indent=2) + "\n")
    for reason in reasons:
        logger.error("FAIL: %s", reason)
    # Wrong digits are logged as failures, so locust alone would exit 1 on any of them: the
    # verdict, which allows the model's own error rate, decides instead.
    environment.process_exit_code = 1 if reasons else 0
