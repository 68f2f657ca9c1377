"""Locust users that send real MNIST test digits and check every answer against its label.

    MNIST_DATA_DIR=../shared/data python -m locust -f loadtests/locustfile.py --headless \\
        -u 8 -r 2 -t 60s --host http://127.0.0.1:3000 --guard-json results/guard.json

Every HTTP request is a row in locust's statistics (a malformed answer or a 4xx/5xx fails
it). Every digit in an answer is also logged as an `ANSWER` event with no response time
(so latency percentiles stay HTTP-only): a wrong digit is its own failure type, "wrong
digit: 4 read as 9", and accuracy under load shows in the report. When locust quits, the
run is judged (harness.checks.verdict) and the exit code is set. Accuracy is tallied per
process, so run it in one process (no --processes / distributed workers).

A share of the single-image uploads (--non-digit-share) are not digits (harness.non_digits:
letters, symbols, numbers, scribbles, shapes, photos, textures): each must come back flagged,
`is_digit` false (or refused with a 422), while MNIST digits must stay `is_digit` true. A model
without a digit detector answers `is_digit` null: those checks are skipped, and the summary says so.

Some uploads are handwritten numbers (harness.numbers: spaced strings of 2-5 test digits, as
photos) sent to /read_number; each must be read exactly, at --min-number-accuracy or better.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import gevent
import numpy as np
from locust import HttpUser, between, events, task
from locust.env import Environment

from harness.checks import (
    Budgets,
    FlaggedDigit,
    MalformedAnswer,
    NotFlagged,
    Tally,
    WrongDigit,
    WrongNumber,
    check_batch,
    check_is_digit,
    check_number,
    check_prediction,
    verdict,
)
from harness.mnist import data_dir, load_mnist
from harness.non_digits import KINDS, NonDigit, iter_non_digits
from harness.numbers import NumberUpload, sample_numbers
from harness.uploads import PHOTO_LIKE, SCENES, Upload, render, sample_uploads

T = TypeVar("T")

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
    non_digits: list[NonDigit]
    non_digit_share = 0.0
    non_digit_cursor = 0
    non_digits_sent = 0
    flagged = Tally()  # non-digits answered with is_digit set, keyed by (kind, index): flagged?
    refused = Tally()  # non-digits refused with a 422 (no digit answered), keyed by (kind, index)
    kept = Tally(population=10_000)  # MNIST digits answered with is_digit set: kept?
    photo_kept = Tally()  # photo-like digits answered with is_digit set: kept?
    numbers: list[NumberUpload]
    number_cursor = 0
    numbers_read = Tally()  # number uploads (/read_number), keyed by pool index: read exactly?
    answers_with_flag = 0  # answers whose is_digit is true or false
    answers_without_flag = 0  # answers whose is_digit is null or absent: no detector
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

    @classmethod
    def next_number(cls) -> tuple[int, NumberUpload] | None:
        if not cls.numbers:
            return None
        i = cls.number_cursor % len(cls.numbers)
        cls.number_cursor += 1
        return i, cls.numbers[i]

    @classmethod
    def next_non_digit(cls) -> NonDigit | None:
        """A non-digit upload for this /predict turn (a --non-digit-share of them), else None."""
        if not cls.non_digits or cls.rng.random() >= cls.non_digit_share:
            return None
        upload = cls.non_digits[cls.non_digit_cursor % len(cls.non_digits)]
        cls.non_digit_cursor += 1
        cls.non_digits_sent += 1
        return upload

    @classmethod
    def record_flag(cls, is_digit: bool | None, tally: Tally, key: Any) -> None:
        if is_digit is None:
            cls.answers_without_flag += 1
            return
        cls.answers_with_flag += 1
        tally.record(key, is_digit)

    @classmethod
    def non_digit_tally(cls) -> Tally:
        """Flagged per non-digit upload: is_digit false, or refused with a 422."""
        tally = Tally(answers=dict(cls.flagged.answers))
        for key in cls.refused.answers:
            tally.record(key, True)
        return tally


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
        "--scene-pool-per-kind",
        type=int,
        default=2,
        help="photos of scenes (a sheet on a table, shadows, ruled paper, form boxes; harness.scenes) rendered "
        "per kind into the photo-like pool (default %(default)s)",
    )
    group.add_argument(
        "--progress-every",
        type=float,
        default=10.0,
        help="seconds between progress lines, 0 for none (default %(default)s)",
    )
    group.add_argument(
        "--non-digit-share",
        type=float,
        default=0.05,
        help="share of single-image /predict uploads that are not digits (default %(default)s)",
    )
    group.add_argument(
        "--non-digit-pool-per-kind",
        type=int,
        default=10,
        help="non-digit uploads rendered per kind before the run (default %(default)s)",
    )
    group.add_argument(
        "--min-non-digits-flagged",
        type=float,
        default=defaults.min_non_digits_flagged,
        help="fail when fewer non-digit uploads come back flagged (models with a detector; default %(default)s)",
    )
    group.add_argument(
        "--min-digits-kept",
        type=float,
        default=defaults.min_digits_kept,
        help="fail when fewer MNIST digits come back is_digit true (models with a detector; default %(default)s)",
    )
    group.add_argument(
        "--number-pool",
        type=int,
        default=60,
        help="handwritten numbers (spaced, 2-5 digits) rendered for /read_number before the run, 0 for none "
        "(default %(default)s)",
    )
    group.add_argument(
        "--min-number-accuracy",
        type=float,
        default=defaults.min_number_accuracy,
        help="fail when fewer numbers are read exactly by /read_number (default %(default)s)",
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
    if opts.scene_pool_per_kind > 0:  # drawn after the others, so that their draws stay as they were
        scenes = sample_uploads(_State.images, _State.labels, SCENES, opts.scene_pool_per_kind, seed=opts.seed + 1)
        _State.photos += list(scenes)
    np.random.default_rng(opts.seed).shuffle(_State.photos)
    _State.non_digit_share = opts.non_digit_share
    per_kind = opts.non_digit_pool_per_kind if opts.non_digit_share > 0 else 0
    _State.non_digits = list(iter_non_digits(KINDS, per_kind, opts.seed, opts.mnist_data_dir))
    np.random.default_rng(opts.seed).shuffle(_State.non_digits)
    numbers = sample_numbers(
        _State.images, _State.labels, ("spaced",), opts.number_pool, lengths=(2, 5), seed=opts.seed
    )
    _State.numbers = list(numbers)  # none with --number-pool 0
    logger.info(
        "loaded 10000 test digits and rendered %d photo-like, %d non-digit and %d number uploads in %.1f s",
        len(_State.photos),
        len(_State.non_digits),
        len(_State.numbers),
        time.perf_counter() - t0,
    )
    # We blocked the event loop; refresh its clock or --run-time would end the test early.
    gevent.get_hub().loop.update_now()


def _answer(environment: Environment, name: str, exception: AssertionError | None) -> None:
    """Log one checked answer as a request of its own type: a failure when `exception` is set."""
    environment.events.request.fire(
        request_type=ANSWER,
        name=name,
        response_time=None,
        response_length=0,
        context={},
        exception=exception,
    )


def _answer_event(environment: Environment, name: str, expected: int, got: int, is_digit: bool | None = None) -> None:
    """Log one checked digit; a wrong or flagged one becomes a failure of its own type."""
    exception: AssertionError | None = None
    if got != expected:
        exception = WrongDigit(expected, got)
    elif is_digit is False:
        exception = FlaggedDigit(expected)
    _answer(environment, name, exception)


def _upload(i: int, filename: str, data: bytes, content_type: str) -> dict[str, Any]:
    """The post's arguments for one upload: odd ones as a multipart field, even ones as the raw body."""
    if i % 2:
        return {"files": {"image": (filename, data, content_type)}}
    return {"data": data, "headers": {"Content-Type": content_type}}


def _checked(resp: Any, check: Callable[[Any], T]) -> T | None:
    """Judge an answer inside catch_response: a 200, JSON, then `check`; None once it has failed."""
    if resp.status_code != 200:
        resp.failure(f"HTTP {resp.status_code}: {resp.text[:200]}")
        return None
    try:
        return check(resp.json())
    except MalformedAnswer as exc:
        resp.failure(exc)
        return None
    except ValueError as exc:  # the body is not JSON
        resp.failure(MalformedAnswer(f"not JSON: {exc}"))
        return None


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

        def digits_and_flags(body: Any) -> tuple[list[int], list[bool | None]]:
            if route == "/predict":
                return [check_prediction(body, self._version)], [check_is_digit(body)]
            return check_batch(body, len(labels), self._version), [check_is_digit(a) for a in body]

        answer = _checked(resp, digits_and_flags)
        if answer is None:
            return
        digits, flags = answer
        resp.success()
        kept = _State.kept if tally is _State.clean else _State.photo_kept
        for key, expected, got, is_digit in zip(keys, labels, digits, flags, strict=True):
            tally.record(key, got == expected)
            _State.record_flag(is_digit, kept, key)
            _answer_event(self.environment, f"{kind} {route}", expected, got, is_digit)

    def _predict_non_digit(self, up: NonDigit) -> None:
        """A non-digit upload: it must come back flagged (is_digit false) or refused (422)."""
        kwargs = _upload(up.index, f"upload.{up.content_type[6:]}", up.data, up.content_type)
        with self.client.post("/predict", name="/predict [non-digit]", catch_response=True, **kwargs) as resp:
            key = (up.kind, up.index)
            try:
                body = resp.json()
            except ValueError as exc:
                resp.failure(MalformedAnswer(f"not JSON: {exc}"))
                return
            if resp.status_code == 422 and isinstance(body, dict) and {"error", "accepted"} <= body.keys():
                resp.success()  # no ink, or refused as not a digit (MNIST_REJECT_NON_DIGITS)
                _State.refused.record(key, True)
                return
            if resp.status_code != 200:
                resp.failure(f"HTTP {resp.status_code}: {resp.text[:200]}")
                return
            try:
                got = check_prediction(body, self._version)
                is_digit = check_is_digit(body)
            except MalformedAnswer as exc:
                resp.failure(exc)
                return
            resp.success()
            _State.record_flag(None if is_digit is None else not is_digit, _State.flagged, key)
            if is_digit is not None:
                _answer(self.environment, f"{up.kind} non-digit", NotFlagged(up.kind, got) if is_digit else None)

    @task(4)
    def predict_png(self) -> None:
        """A 28x28 PNG exactly as MNIST stores it, as a multipart upload (or, at times, a non-digit)."""
        if up := _State.next_non_digit():
            self._predict_non_digit(up)
            return
        (i,) = _State.next_indices(1)
        data, ctype = render(_State.images[i], "png28", _State.rng)
        with self.client.post(
            "/predict", files={"image": (f"{i}.png", data, ctype)}, name="/predict [png28]", catch_response=True
        ) as resp:
            self._check(resp, "/predict", "png28", [int(_State.labels[i])], [int(i)], _State.clean)

    @task(3)
    def predict_photo(self) -> None:
        """A photo-like upload; half as multipart, half as a raw image/* body (or, at times, a non-digit)."""
        if non_digit := _State.next_non_digit():
            self._predict_non_digit(non_digit)
            return
        up = _State.next_photo()
        kwargs = _upload(up.index, f"upload.{up.content_type[6:]}", up.data, up.content_type)
        with self.client.post("/predict", name="/predict [photo-like]", catch_response=True, **kwargs) as resp:
            self._check(resp, "/predict", up.kind, [up.label], [(up.kind, up.index)], _State.photo)

    @task(1)
    def predict_batch(self) -> None:
        """16-64 PNG digits in one multipart request."""
        idx = _State.next_indices(int(_State.rng.integers(16, 65)))
        files = [("images", (f"{i}.png", *render(_State.images[i], "png28", _State.rng))) for i in idx]
        with self.client.post("/predict_batch", files=files, name="/predict_batch", catch_response=True) as resp:
            self._check(resp, "/predict_batch", "png28", _State.labels[idx].tolist(), idx.tolist(), _State.clean)

    @task(1)
    def read_number(self) -> None:
        """A photo of a handwritten number, read digit by digit (half multipart, half raw body)."""
        picked = _State.next_number()
        if picked is None:
            return
        i, up = picked
        kwargs = _upload(i, "number.jpg", up.data, up.content_type)
        with self.client.post("/read_number", name="/read_number", catch_response=True, **kwargs) as resp:
            got = _checked(resp, lambda body: check_number(body, self._version))
            if got is None:
                return
            resp.success()
            _State.numbers_read.record(i, got == up.label)
            _answer(
                self.environment, f"{up.kind} /read_number", None if got == up.label else WrongNumber(up.label, got)
            )

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
        "numbers_checked": _State.numbers_read.n,
        "number_accuracy": _State.numbers_read.accuracy,
        **_non_digit_summary(),
    }


def _non_digit_summary() -> dict[str, Any]:
    """What the digit detector said: non-digits flagged, digits kept; or why it was not checked."""
    detector = _State.answers_with_flag > 0
    out: dict[str, Any] = {
        "non_digit_share": _State.non_digit_share,
        "non_digits_sent": _State.non_digits_sent,
        "detector": detector,
    }
    if not detector:
        why = "no answers yet" if not _State.answers_without_flag else "answers carry is_digit null (no detector)"
        out["non_digit_checks"] = f"skipped: {why}"
        return out
    tally = _State.non_digit_tally()
    by_kind: dict[str, list[bool]] = {}
    for (kind, _), flagged in tally.answers.items():
        by_kind.setdefault(kind, []).append(flagged)
    out.update(
        non_digit_checks="checked",
        non_digits_checked=tally.n,
        non_digits_flagged=tally.accuracy,
        non_digits_refused=_State.refused.n,
        non_digits_flagged_by_kind={k: round(sum(v) / len(v), 4) for k, v in sorted(by_kind.items())},
        digits_kept=_State.kept.accuracy,
        digits_checked_for_kept=_State.kept.n,
        photo_digits_kept=_State.photo_kept.accuracy,
        answers_without_is_digit=_State.answers_without_flag,
    )
    return out


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
        flagged = s.get("non_digits_flagged")
        logger.info(
            "%4.0fs %3d users | %6.1f req/s | p50 %4d ms p99 %5d ms | %d failed | accuracy %s on %d digits"
            " | non-digits flagged %s of %d",
            s["duration_s"],
            environment.runner.user_count,
            s["req_per_s"],
            s["p50_ms"],
            s["p99_ms"],
            s["http_failures"],
            acc,
            s["digits_checked"],
            "-" if flagged is None else f"{100 * flagged:.0f}%",
            s.get("non_digits_checked", 0),
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
        min_non_digits_flagged=opts.min_non_digits_flagged,
        min_digits_kept=opts.min_digits_kept,
        min_number_accuracy=opts.min_number_accuracy,
    )
    s = summary(environment)
    detector = s["detector"]
    reasons = verdict(
        budgets,
        http_requests=s["http_requests"],
        http_failures=s["http_failures"],
        p99_ms=s["p99_ms"],
        recorded_accuracy=s["recorded_accuracy"],
        clean=_State.clean,
        photo=_State.photo,
        non_digits=_State.non_digit_tally() if detector else None,
        kept=_State.kept if detector else None,
        numbers=_State.numbers_read,
    )
    if not detector:
        logger.warning("non-digit checks %s", s["non_digit_checks"])
    s.update(passed=not reasons, reasons=reasons, budgets=budgets.__dict__)
    if opts.guard_json:
        Path(opts.guard_json).write_text(json.dumps(s, indent=2) + "\n")
    for reason in reasons:
        logger.error("FAIL: %s", reason)
    # Wrong digits are logged as failures, so locust alone would exit 1 on any of them: the
    # verdict, which allows the model's own error rate, decides instead.
    environment.process_exit_code = 1 if reasons else 0
