"""harness.checks: the rules a load test judges answers and runs by, without starting locust."""

from __future__ import annotations

import pytest

from harness.checks import (
    Budgets,
    FlaggedDigit,
    MalformedAnswer,
    NotFlagged,
    Tally,
    WrongDigit,
    accuracy_upper_bound,
    check_batch,
    check_is_digit,
    check_number,
    check_prediction,
    memory_growth,
    verdict,
)

pytestmark = pytest.mark.unit


def _prediction(digit: int = 3, version: str = "mnist-cnn-1234abcd") -> dict:
    probs = [0.01] * 10
    probs[digit] = 0.91
    return {"digit": digit, "confidence": 0.91, "probabilities": probs, "model_version": version}


class TestAnswers:
    def test_good_prediction_gives_its_digit(self) -> None:
        assert check_prediction(_prediction(7), "mnist-cnn-1234abcd") == 7

    @pytest.mark.parametrize(
        ("change", "message"),
        [
            ({"digit": 10}, "digit"),
            ({"digit": "3"}, "digit"),
            ({"digit": True}, "digit"),
            ({"probabilities": [0.1] * 9}, "10 numbers"),
            ({"probabilities": [0.5] * 10}, "sum"),
            ({"confidence": 0.5}, "confidence"),
            ({"model_version": "other"}, "GET /model says"),
        ],
    )
    def test_malformed_predictions_say_why(self, change: dict, message: str) -> None:
        with pytest.raises(MalformedAnswer, match=message):
            check_prediction({**_prediction(), **change}, "mnist-cnn-1234abcd")

    def test_digit_must_be_the_most_probable(self) -> None:
        answer = _prediction(3)
        answer["digit"], answer["confidence"] = 4, 0.01
        with pytest.raises(MalformedAnswer, match="most probable"):
            check_prediction(answer)

    def test_missing_keys_and_non_objects(self) -> None:
        with pytest.raises(MalformedAnswer, match="missing keys"):
            check_prediction({"digit": 1})
        with pytest.raises(MalformedAnswer, match="JSON object"):
            check_prediction([_prediction()])

    def test_batch_keeps_order_and_length(self) -> None:
        assert check_batch([_prediction(1), _prediction(2)], 2) == [1, 2]
        with pytest.raises(MalformedAnswer, match="sent 3 images, got 2"):
            check_batch([_prediction(1), _prediction(2)], 3)
        with pytest.raises(MalformedAnswer, match="JSON list"):
            check_batch(_prediction(1), 1)

    def test_wrong_digit_names_both_digits(self) -> None:
        assert str(WrongDigit(4, 9)) == "wrong digit: 4 read as 9"
        assert str(NotFlagged("letters", 1)) == "non-digit not flagged: letters read as 1"
        assert str(FlaggedDigit(7)) == "digit flagged as a non-digit: a 7"


class TestIsDigit:
    def test_a_detector_answers_a_flag_and_its_score(self) -> None:
        assert check_is_digit({**_prediction(), "is_digit": True, "digit_score": 0.97}) is True
        assert check_is_digit({**_prediction(), "is_digit": False, "digit_score": 0.02}) is False

    def test_no_detector_is_null_or_absent(self) -> None:
        assert check_is_digit({**_prediction(), "is_digit": None, "digit_score": None}) is None
        assert check_is_digit(_prediction()) is None  # a service from before the digit detector

    @pytest.mark.parametrize(
        ("fields", "message"),
        [
            ({"is_digit": "yes", "digit_score": 0.9}, "is_digit 'yes'"),
            ({"is_digit": 1, "digit_score": 0.9}, "is_digit 1"),
            ({"is_digit": True, "digit_score": None}, "digit_score None"),
            ({"is_digit": True, "digit_score": 1.5}, "digit_score 1.5"),
            ({"is_digit": None, "digit_score": 0.5}, "without is_digit"),
        ],
    )
    def test_malformed_flags_say_why(self, fields: dict, message: str) -> None:
        with pytest.raises(MalformedAnswer, match=message):
            check_is_digit({**_prediction(), **fields})


class TestAccuracyBound:
    def test_bound_is_above_the_estimate_and_shrinks_with_n(self) -> None:
        small = accuracy_upper_bound(99, 100)
        large = accuracy_upper_bound(9900, 10_000)
        assert 0.99 < large < small <= 1.0

    def test_whole_population_is_exact(self) -> None:
        assert accuracy_upper_bound(9_950, 10_000, population=10_000) == pytest.approx(0.995)

    def test_tally_counts_each_image_once(self) -> None:
        tally = Tally(population=10)
        tally.record(1, True)
        tally.record(1, False)  # a repeat does not change the first answer
        tally.record(2, False)
        assert (tally.n, tally.correct, tally.accuracy) == (2, 1, 0.5)


class TestVerdict:
    def _clean(self, correct: int, n: int = 10_000) -> Tally:
        tally = Tally(population=10_000)
        for i in range(n):
            tally.record(i, i >= n - correct)
        return tally

    def _judge(self, **overrides: object) -> list[str]:
        kwargs = {
            "http_requests": 500,
            "http_failures": 0,
            "p99_ms": 200.0,
            "recorded_accuracy": 0.995,
            "clean": self._clean(9_950),
            "photo": Tally(),
        }
        kwargs.update(overrides)
        return verdict(Budgets(), **kwargs)

    def test_a_good_run_passes(self) -> None:
        assert self._judge() == []

    def test_any_failed_request_fails(self) -> None:
        assert any("1 requests failed" in r for r in self._judge(http_failures=1))

    def test_p99_over_budget_fails(self) -> None:
        assert any("p99" in r for r in self._judge(p99_ms=Budgets().p99_ms + 1))

    def test_accuracy_drop_over_budget_fails(self) -> None:
        assert self._judge(clean=self._clean(9_931)) == []  # 0.19 pp under
        reasons = self._judge(clean=self._clean(9_920))  # 0.3 pp under, whole test set
        assert any("accuracy under load 99.20%" in r for r in reasons)

    def test_few_digits_are_not_judged_harshly(self) -> None:
        # 2 wrong out of 300 is 99.33%, but 300 digits cannot show a 0.2 pp drop
        assert self._judge(clean=self._clean(298, n=300)) == []

    def test_photo_like_floor(self) -> None:
        photo = Tally()
        for i in range(1000):
            photo.record(("photo", i), i >= 50)  # 95%
        assert any("photo-like" in r for r in self._judge(photo=photo))

    def test_non_digits_must_be_flagged(self) -> None:
        flagged = Tally()
        for i in range(200):
            flagged.record(("letters", i), i >= 100)  # 50% flagged
        reasons = self._judge(non_digits=flagged)
        assert any("50.0% of 200 non-digit uploads were flagged" in r for r in reasons), reasons
        few = Tally()
        for i in range(10):
            few.record(("shapes", i), i >= 4)  # 6 of 10: too few to call it under 70%
        assert self._judge(non_digits=few) == []

    def test_digits_must_be_kept(self) -> None:
        kept = Tally(population=10_000)
        for i in range(10_000):
            kept.record(i, i >= 300)  # 97% kept
        assert any("97.00% of 10000 MNIST digits were kept" in r for r in self._judge(kept=kept))
        assert self._judge(kept=self._clean(9_950)) == []

    def test_without_a_detector_nothing_is_judged(self) -> None:
        assert self._judge(non_digits=None, kept=None) == []
        assert self._judge(non_digits=Tally(), kept=Tally()) == []

    def test_nothing_answered_fails(self) -> None:
        reasons = self._judge(http_requests=0, clean=Tally(population=10_000), recorded_accuracy=None)
        assert len(reasons) == 2


def _number(version: str = "mnist-cnn-1234abcd") -> dict:
    digits = [
        {"digit": 4, "confidence": 0.99, "is_digit": True, "box": [3, 4, 10, 20]},
        {"digit": 0, "confidence": 0.98, "is_digit": True, "box": [20, 4, 12, 20]},
        {"digit": 7, "confidence": 0.97, "is_digit": False, "box": [40, 5, 11, 19]},
    ]
    return {"number": "40?", "confidence": 0.94, "digits": digits, "model_version": version}


class TestNumbers:
    def test_good_answer_gives_its_number(self) -> None:
        assert check_number(_number(), "mnist-cnn-1234abcd") == "40?"

    @pytest.mark.parametrize(
        ("change", "message"),
        [
            ({"number": "407"}, "does not spell"),
            ({"number": "40"}, "one character per part"),
            ({"digits": []}, "one character per part"),
            ({"confidence": 1.5}, "confidence"),
            ({"model_version": "other"}, "GET /model says"),
        ],
    )
    def test_malformed_answers_are_refused(self, change: dict, message: str) -> None:
        with pytest.raises(MalformedAnswer, match=message):
            check_number({**_number(), **change}, "mnist-cnn-1234abcd")

    def test_parts_must_run_left_to_right_with_boxes(self) -> None:
        answer = _number()
        answer["digits"][0]["box"] = [30, 4, 10, 20]
        with pytest.raises(MalformedAnswer, match="left to right"):
            check_number(answer)
        answer["digits"][0]["box"] = [3, 4, 10]
        with pytest.raises(MalformedAnswer, match="box"):
            check_number(answer)

    def test_numbers_floor(self) -> None:
        numbers = Tally()
        for i in range(200):
            numbers.record(i, i >= 100)  # 50% read exactly
        reasons = TestVerdict()._judge(numbers=numbers)
        assert any("50.0% of 200 numbers were read exactly" in r for r in reasons), reasons
        assert TestVerdict()._judge(numbers=Tally()) == []


class TestMemoryGrowth:
    MIB = 2**20

    def test_start_and_end_are_window_medians_after_warm_up(self) -> None:
        rss = [100, 300, 310, 400, 305, 320, 330, 900, 335, 340]  # MiB every 10 s, two spikes
        samples = [(10.0 * i, r * self.MIB) for i, r in enumerate(rss)]
        start, end, growth = memory_growth(samples, warmup_s=10, window_s=20)
        assert (start, end) == (310 * self.MIB, 340 * self.MIB)  # spikes do not decide
        assert growth == pytest.approx(30 / 310)

    def test_steady_growth_is_caught(self) -> None:
        samples = [(10.0 * i, (300 + 5 * i) * self.MIB) for i, _ in enumerate(range(60))]
        assert memory_growth(samples, warmup_s=60, window_s=60)[2] > 0.5

    def test_no_samples_is_an_error(self) -> None:
        with pytest.raises(ValueError, match="no memory samples"):
            memory_growth([], warmup_s=10)
