"""What counts as a good answer and a passing run, kept apart from locust so tests import it freely.

The locustfile imports locust (which monkey-patches gevent on import); these are the pure
rules it applies, unit-tested without starting anything.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

# z for a one-sided 99% bound: a run fails only when accuracy is clearly too low, not by chance.
Z_ONE_SIDED_99 = 2.326


class MalformedAnswer(ValueError):
    """The service answered 2xx with something that is not the contract's Prediction JSON."""


class WrongDigit(AssertionError):
    """A well-formed answer naming the wrong digit: its own failure type in locust's report."""

    def __init__(self, expected: int, got: int) -> None:
        super().__init__(f"wrong digit: {expected} read as {got}")


def check_prediction(answer: Any, model_version: str | None = None) -> int:
    """Return the predicted digit of one `Prediction`, or raise MalformedAnswer saying why."""
    if not isinstance(answer, dict):
        raise MalformedAnswer(f"expected a JSON object, got {type(answer).__name__}")
    missing = {"digit", "confidence", "probabilities", "model_version"} - answer.keys()
    if missing:
        raise MalformedAnswer(f"missing keys {sorted(missing)}")
    digit, confidence, probs = answer["digit"], answer["confidence"], answer["probabilities"]
    if not isinstance(digit, int) or isinstance(digit, bool) or not 0 <= digit <= 9:
        raise MalformedAnswer(f"digit {digit!r} is not an int in 0..9")
    if not isinstance(probs, list) or len(probs) != 10:
        raise MalformedAnswer("probabilities is not a list of 10 numbers")
    if not all(isinstance(p, int | float) and 0.0 <= p <= 1.0 for p in probs):
        raise MalformedAnswer("probabilities are not all numbers in [0, 1]")
    if abs(sum(probs) - 1.0) > 1e-3:
        raise MalformedAnswer(f"probabilities sum to {sum(probs):.4f}, not 1")
    if probs[digit] < max(probs) - 1e-6:
        raise MalformedAnswer(f"digit {digit} is not the most probable class")
    if not isinstance(confidence, int | float) or abs(confidence - probs[digit]) > 1e-4:
        raise MalformedAnswer(f"confidence {confidence!r} is not probabilities[{digit}]")
    if model_version is not None and answer["model_version"] != model_version:
        raise MalformedAnswer(f"answered by model {answer['model_version']!r}, GET /model says {model_version!r}")
    return digit


class WrongNumber(AssertionError):
    """A well-formed /read_number answer naming the wrong number: its own failure type in the report."""

    def __init__(self, expected: str, got: str) -> None:
        super().__init__(f"wrong number: {expected} read as {got}")


def check_number(answer: Any, model_version: str | None = None) -> str:
    """Return the number of one /read_number answer, or raise MalformedAnswer saying why: its
    digits left to right, each with a confidence and a box, and the number written from them."""
    if not isinstance(answer, dict):
        raise MalformedAnswer(f"expected a JSON object, got {type(answer).__name__}")
    missing = {"number", "confidence", "digits", "model_version"} - answer.keys()
    if missing:
        raise MalformedAnswer(f"missing keys {sorted(missing)}")
    number, digits = answer["number"], answer["digits"]
    if not isinstance(digits, list) or not digits or not isinstance(number, str) or len(number) != len(digits):
        raise MalformedAnswer(f"number {number!r} does not have one character per part of {digits!r}")
    for k, part in enumerate(digits):
        if not isinstance(part, dict) or {"digit", "confidence", "is_digit", "box"} - part.keys():
            raise MalformedAnswer(f"digits[{k}] is not a digit with a confidence, is_digit and box")
        box = part["box"]
        if not (isinstance(box, list) and len(box) == 4 and all(isinstance(v, int) and v >= 0 for v in box)):
            raise MalformedAnswer(f"digits[{k}].box {box!r} is not [x, y, w, h]")
        if number[k] != ("?" if part["is_digit"] is False else str(part["digit"])):
            raise MalformedAnswer(f"number {number!r} does not spell digits[{k}]")
    xs = [part["box"][0] for part in digits]
    if xs != sorted(xs):
        raise MalformedAnswer("digits are not left to right")
    confidence = answer["confidence"]
    if not isinstance(confidence, int | float) or not 0.0 <= confidence <= 1.0:
        raise MalformedAnswer(f"confidence {confidence!r} is not a number in [0, 1]")
    if model_version is not None and answer["model_version"] != model_version:
        raise MalformedAnswer(f"answered by model {answer['model_version']!r}, GET /model says {model_version!r}")
    return number


class NotFlagged(AssertionError):
    """A non-digit upload answered as a digit without is_digit false: its own failure type in the report."""

    def __init__(self, kind: str, got: int) -> None:
        super().__init__(f"non-digit not flagged: {kind} read as {got}")


class FlaggedDigit(AssertionError):
    """A digit answered with is_digit false: its own failure type in the report."""

    def __init__(self, expected: int) -> None:
        super().__init__(f"digit flagged as a non-digit: a {expected}")


def check_is_digit(answer: dict[str, Any]) -> bool | None:
    """is_digit of a well-formed Prediction; None when the model has no detector (null or absent).

    With a detector, is_digit is a bool and digit_score a number in [0, 1]; without one, both are null.
    """
    is_digit, score = answer.get("is_digit"), answer.get("digit_score")
    if is_digit is None:
        if score is not None:
            raise MalformedAnswer(f"digit_score {score!r} without is_digit")
        return None
    if not isinstance(is_digit, bool):
        raise MalformedAnswer(f"is_digit {is_digit!r} is not true, false or null")
    if not isinstance(score, int | float) or isinstance(score, bool) or not 0.0 <= score <= 1.0:
        raise MalformedAnswer(f"digit_score {score!r} is not a number in [0, 1] beside is_digit")
    return is_digit


def check_batch(answers: Any, n: int, model_version: str | None = None) -> list[int]:
    """Digits of a batch answer, which must be a list of n Predictions in input order."""
    if not isinstance(answers, list):
        raise MalformedAnswer(f"expected a JSON list, got {type(answers).__name__}")
    if len(answers) != n:
        raise MalformedAnswer(f"sent {n} images, got {len(answers)} answers")
    return [check_prediction(a, model_version) for a in answers]


def accuracy_upper_bound(correct: int, n: int, population: int | None = None) -> float:
    """One-sided 99% upper bound on accuracy (Wilson), tightened when n covers a finite set.

    population: size of the set the images were drawn from without replacement (the
    10,000 test digits); when n reaches it the measured accuracy is exact.
    """
    if n == 0:
        return 1.0
    p = correct / n
    fpc = 1.0 if population is None else max(population - n, 0) / max(population - 1, 1)
    if fpc == 0.0:
        return p
    z2 = Z_ONE_SIDED_99**2 * fpc
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = math.sqrt(z2) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return min(1.0, centre + half)


@dataclass
class Tally:
    """First answer per distinct image: repeats of an image do not count twice."""

    population: int | None = None
    answers: dict[Any, bool] = field(default_factory=dict)

    def record(self, key: Any, correct: bool) -> None:
        self.answers.setdefault(key, correct)

    @property
    def n(self) -> int:
        return len(self.answers)

    @property
    def correct(self) -> int:
        return sum(self.answers.values())

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.n if self.n else None

    @property
    def upper_bound(self) -> float:
        return accuracy_upper_bound(self.correct, self.n, self.population)


@dataclass(frozen=True)
class Budgets:
    """What a run must meet; defaults pass with room to spare on a 2-core machine."""

    p99_ms: float = 1000.0
    max_accuracy_drop_pp: float = 0.2
    min_photo_accuracy: float = 0.99
    max_failures: int = 0
    # With a digit detector: non-digit uploads flagged, MNIST digits kept (is_digit true). The served
    # head flags ~77% of harness.non_digits' nine kinds together at its threshold (docs/detector.md)
    min_non_digits_flagged: float = 0.7
    min_digits_kept: float = 0.99
    # /read_number on spaced numbers of 2-5 test digits (harness.numbers): read exactly. Chosen
    # under the spaced row of `python -m benchmarks.bench_numbers --split validation --no-write`.
    min_number_accuracy: float = 0.8


def verdict(
    budgets: Budgets,
    *,
    http_requests: int,
    http_failures: int,
    p99_ms: float,
    recorded_accuracy: float | None,
    clean: Tally,
    photo: Tally,
    non_digits: Tally | None = None,
    kept: Tally | None = None,
    numbers: Tally | None = None,
) -> list[str]:
    """Reasons the run fails; an empty list means it passed.

    non_digits: per non-digit upload, was it flagged; kept: per MNIST digit, was it kept (is_digit
    true). Both are judged by one-sided 99% bounds, like accuracy; leave them None (or empty) when
    the model has no detector. numbers: per number upload (/read_number), was it read exactly.
    """
    reasons = []
    if http_requests == 0:
        reasons.append("no requests were answered")
    if http_failures > budgets.max_failures:
        reasons.append(f"{http_failures} requests failed (allowed {budgets.max_failures})")
    if p99_ms > budgets.p99_ms:
        reasons.append(f"p99 {p99_ms:.0f} ms over the {budgets.p99_ms:.0f} ms budget")
    if recorded_accuracy is None:
        reasons.append("GET /model gave no test_accuracy to compare with")
    elif clean.n == 0:
        reasons.append("no MNIST test digits were answered")
    else:
        floor = recorded_accuracy - budgets.max_accuracy_drop_pp / 100
        if clean.upper_bound < floor:
            reasons.append(
                f"accuracy under load {100 * (clean.accuracy or 0.0):.2f}% on {clean.n} digits is more than "
                f"{budgets.max_accuracy_drop_pp} pp under the recorded {100 * recorded_accuracy:.2f}%"
            )
    if photo.n and photo.upper_bound < budgets.min_photo_accuracy:
        reasons.append(
            f"photo-like accuracy {100 * (photo.accuracy or 0.0):.2f}% on {photo.n} uploads is under "
            f"{100 * budgets.min_photo_accuracy:.1f}%"
        )
    if non_digits is not None and non_digits.n and non_digits.upper_bound < budgets.min_non_digits_flagged:
        reasons.append(
            f"only {100 * (non_digits.accuracy or 0):.1f}% of {non_digits.n} non-digit uploads were flagged "
            f"(is_digit false), under {100 * budgets.min_non_digits_flagged:.0f}%"
        )
    if kept is not None and kept.n and kept.upper_bound < budgets.min_digits_kept:
        reasons.append(
            f"only {100 * (kept.accuracy or 0):.2f}% of {kept.n} MNIST digits were kept (is_digit true), "
            f"under {100 * budgets.min_digits_kept:.0f}%"
        )
    if numbers is not None and numbers.n and numbers.upper_bound < budgets.min_number_accuracy:
        reasons.append(
            f"only {100 * (numbers.accuracy or 0):.1f}% of {numbers.n} numbers were read exactly "
            f"(/read_number), under {100 * budgets.min_number_accuracy:.0f}%"
        )
    return reasons


def memory_growth(
    samples: Sequence[tuple[float, int]], warmup_s: float, window_s: float = 60.0
) -> tuple[int, int, float]:
    """(start RSS, end RSS, growth fraction) of a soak, from medians of two windows.

    Memory right after start-up is not a fair baseline: the first requests allocate
    onnxruntime arenas and per-batch-size buffers once. Start is the median of the samples in
    the `window_s` after `warmup_s`; end is the median of the last `window_s`. Single samples
    swing by a few percent with allocation bursts, medians do not.
    """
    if not samples:
        raise ValueError("no memory samples were taken")
    t0, t_end = samples[0][0], samples[-1][0]
    first = [rss for t, rss in samples if warmup_s <= t - t0 <= warmup_s + window_s]
    last = [rss for t, rss in samples if t >= t_end - window_s]
    start = int(statistics.median(first or [samples[-1][1]]))
    end = int(statistics.median(last))
    return start, end, (end - start) / start
