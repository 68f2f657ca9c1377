"""The digit detector's serving side without a server: the contract's digit_score and
digit_detector, the tiny model's detector, service.model's checks and its one run, the answer
fields, the 422's words, the counter and the settings."""

from __future__ import annotations

import json
from pathlib import Path
from unittest.mock import ANY

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from pydantic import TypeAdapter, ValidationError

from contract import Metadata
from harness.tiny_model import tiny_digit_score, tiny_onnx, write_model_dir
from service.answers import Prediction, prediction_answers, predictions_json
from service.errors import not_a_digit
from service.model import Classifier, ModelError, Outputs, resolve, validate
from service.openapi import complete
from service.server import metrics
from service.settings import Settings

pytestmark = pytest.mark.unit


def _metadata(tmp_path: Path, **kwargs) -> dict:
    version = write_model_dir(tmp_path, **kwargs)
    return json.loads((tmp_path / version / "metadata.json").read_text())


def _frames() -> np.ndarray:
    """(4, 28, 28) float32: blank, a digit-like bar, a filled square, all ink."""
    bar = np.zeros((28, 28), np.float32)
    bar[4:24, 11:17] = 1.0  # mean ink 0.15: the tiny detector's ideal digit
    square = np.zeros((28, 28), np.float32)
    square[4:24, 4:24] = 1.0  # mean ink 0.51
    return np.stack([np.zeros((28, 28), np.float32), bar, square, np.ones((28, 28), np.float32)])


class TestContract:
    def test_a_model_without_a_detector_is_unchanged(self, tmp_path: Path) -> None:
        meta = Metadata.model_validate(_metadata(tmp_path))
        assert meta.digit_detector is None and meta.outputs.digit_score is None
        assert "digit_detector" not in meta.dump() and "digit_score" not in meta.dump()["outputs"]

    def test_a_detector_and_its_output_are_read(self, tmp_path: Path) -> None:
        raw = _metadata(tmp_path, detector=True, digit_threshold=0.41)
        raw["digit_detector"].update(auroc=0.995, kinds={"letters": 0.97})  # extra keys are kept
        meta = Metadata.model_validate(raw)
        assert meta.outputs.digit_score is not None and meta.outputs.digit_score.shape == ["N"]
        assert meta.digit_detector is not None and meta.digit_detector.threshold == 0.41
        assert meta.dump()["digit_detector"]["auroc"] == 0.995

    @pytest.mark.parametrize(
        ("change", "says"),
        [
            (lambda m: m.pop("digit_detector"), "come together"),
            (lambda m: m["outputs"].pop("digit_score"), "come together"),
            (lambda m: m["digit_detector"].update(output="score"), "is not outputs.digit_score"),
            (lambda m: m["digit_detector"].update(threshold=1.0), "threshold"),
            (lambda m: m["digit_detector"].update(threshold=0.0), "threshold"),
            (lambda m: m["digit_detector"].pop("threshold"), "threshold"),
            (lambda m: m["outputs"]["digit_score"].update(shape=["N", 1]), "must have shape [N]"),
        ],
        ids=["no detector", "no output", "other name", "threshold 1", "threshold 0", "no threshold", "shape [N, 1]"],
    )
    def test_half_a_detector_is_refused(self, tmp_path: Path, change, says: str) -> None:
        raw = _metadata(tmp_path, detector=True)
        change(raw)
        with pytest.raises(ValidationError, match=says.replace("[", r"\[").replace("]", r"\]")):
            Metadata.model_validate(raw)


class TestTinyDetector:
    def test_graph_scores_mean_ink_as_the_numpy_reference(self, tmp_path: Path) -> None:
        clf = Classifier(_served(tmp_path, detector=True), "cpu", 1)
        out = clf.run(_frames())
        assert out.digit_score is not None and out.digit_score.dtype == np.float32
        np.testing.assert_allclose(out.digit_score, tiny_digit_score(_frames()), atol=1e-6)
        # blank, bar, square, all ink: only the bar looks like a digit
        assert out.is_digit is not None and out.is_digit.tolist() == [False, True, False, False]

    def test_without_detector_the_graph_has_two_outputs(self) -> None:
        graph = onnx.load_from_string(tiny_onnx())
        assert [o.name for o in graph.graph.output] == ["logits", "probabilities"]


def _served(tmp_path: Path, **kwargs):
    write_model_dir(tmp_path, **kwargs)
    return resolve(tmp_path)


def _graph_with_score(node: onnx.NodeProto, shape: list | None = None) -> bytes:
    """The tiny graph with digit_score computed by `node` (from pixels, probabilities or `axes`)."""
    base = onnx.load_from_string(tiny_onnx())
    base.graph.node.append(node)
    base.graph.initializer.append(numpy_helper.from_array(np.array([1, 2, 3], np.int64), "axes"))
    base.graph.output.append(helper.make_tensor_value_info("digit_score", TensorProto.FLOAT, shape or ["N"]))
    return base.SerializeToString()


class TestValidate:
    def test_a_detector_model_passes(self, tmp_path: Path) -> None:
        meta = validate(_served(tmp_path, detector=True))
        assert meta.digit_detector is not None and meta.digit_detector.output == "digit_score"

    @pytest.mark.parametrize(
        ("graph", "says"),
        [
            # metadata names digit_score, the graph has no such output
            (tiny_onnx(), "metadata names output 'digit_score'"),
            # a score that is no probability: the frame's summed ink (0 and 784)
            (
                _graph_with_score(helper.make_node("ReduceSum", ["pixels", "axes"], ["digit_score"], keepdims=0)),
                "not (2,) finite scores in [0, 1]",
            ),
            # ten scores per frame, not one
            (
                _graph_with_score(helper.make_node("Identity", ["probabilities"], ["digit_score"]), shape=["N", 10]),
                "has shape",
            ),
        ],
        ids=["missing output", "out of range", "wrong shape"],
    )
    def test_a_broken_detector_is_refused(self, tmp_path: Path, graph: bytes, says: str) -> None:
        meta = _metadata(tmp_path / "ref", detector=True)
        files = _served(
            tmp_path / "m", onnx_bytes=graph, outputs=meta["outputs"], digit_detector=meta["digit_detector"]
        )
        with pytest.raises(ModelError, match=says.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
            validate(files)


class TestClassifier:
    def test_one_session_run_answers_both(self, tmp_path: Path) -> None:
        clf = Classifier(_served(tmp_path, detector=True), "cpu", 1)
        calls = []
        real = clf.session

        class Counting:
            def run(self, names, feeds):
                calls.append(list(names))
                return real.run(names, feeds)

        clf.session = Counting()  # type: ignore[assignment]
        out = clf.run(np.random.default_rng(0).random((70, 28, 28), np.float32))
        assert calls == [["probabilities", "digit_score"]]
        assert out.probabilities.shape == (70, 10) and out.digit_score is not None and out.digit_score.shape == (70,)
        assert clf.probabilities(_frames()).shape == (4, 10)

    def test_threshold_in_force_is_the_setting_else_the_fitted_one(self, tmp_path: Path) -> None:
        files = _served(tmp_path, detector=True, digit_threshold=0.3)
        assert Classifier(files, "cpu", 1).digit_threshold == 0.3
        strict = Classifier(files, "cpu", 1, digit_threshold=0.999)
        assert strict.digit_threshold == 0.999
        assert strict.run(_frames()).is_digit.tolist() == [False, False, False, False]  # type: ignore[union-attr]

    def test_without_a_detector_scores_are_none(self, tmp_path: Path, caplog) -> None:
        clf = Classifier(_served(tmp_path), "cpu", 1, digit_threshold=0.5)
        assert "no digit detector" in caplog.text
        out = clf.run(_frames())
        assert (out.digit_score, out.is_digit, clf.digit_threshold, clf.has_detector) == (None, None, None, False)
        clf.warm_up()

    def test_empty_batch(self, tmp_path: Path) -> None:
        clf = Classifier(_served(tmp_path, detector=True), "cpu", 1)
        out = clf.run(np.zeros((0, 28, 28), np.float32))
        assert out.probabilities.shape == (0, 10) and out.digit_score is not None and out.digit_score.shape == (0,)

    def test_chunks_concatenate_in_order(self, tmp_path: Path) -> None:
        clf = Classifier(_served(tmp_path, detector=True), "cpu", 1)
        frames = np.concatenate([_frames()] * 3)
        whole = clf.run(frames)
        joined = Outputs.concat([clf.run(frames[i : i + 5]) for i in range(0, 12, 5)])
        np.testing.assert_array_equal(joined.digit_score, whole.digit_score)  # type: ignore[arg-type]
        np.testing.assert_array_equal(joined.is_digit, whole.is_digit)  # type: ignore[arg-type]
        np.testing.assert_allclose(joined.probabilities, whole.probabilities, atol=1e-6)


class TestAnswers:
    def test_fields_follow_scores_and_flags(self) -> None:
        probs = np.eye(10, dtype=np.float32)[[3, 7]] * 0.9 + 0.01  # (2, 10)
        scores, flags = np.array([0.91234567, 0.03], np.float32), np.array([True, False])
        one = [
            Prediction.model_validate_json(a) for a in prediction_answers(probs, list(range(10)), "v", scores, flags)
        ]
        many = TypeAdapter(list[Prediction]).validate_json(predictions_json(probs, list(range(10)), "v", scores, flags))
        assert one == many
        assert [(p.is_digit, p.digit_score) for p in one] == [(True, pytest.approx(0.912346)), (False, 0.03)]

    def test_without_a_detector_both_are_null(self) -> None:
        probs = np.full((1, 10), 0.1, np.float32)
        (answer,) = json.loads(predictions_json(probs, list(range(10)), "v"))
        assert answer["is_digit"] is None and answer["digit_score"] is None

    def test_both_fields_are_in_the_schema_and_required(self) -> None:
        schema = Prediction.model_json_schema()
        assert {"is_digit", "digit_score"} <= set(schema["required"])
        assert {"type": "null"} in schema["properties"]["is_digit"]["anyOf"]

    def test_api_docs_say_nullable_as_openapi_3_0_does(self) -> None:
        """BentoML's document is OpenAPI 3.0: no null type, `nullable: true` instead."""
        spec = complete({"paths": {"/predict": {"post": {}}}}, Settings(), ["mnist-cnn-00000000"])
        props = spec["components"]["schemas"]["Prediction"]["properties"]
        assert props["is_digit"] == {"type": "boolean", "nullable": True, "description": ANY, "title": "Is Digit"}
        assert (props["digit_score"]["type"], props["digit_score"]["nullable"]) == ("number", True)
        assert (props["digit_score"]["minimum"], props["digit_score"]["maximum"]) == (0.0, 1.0)
        assert '"null"' not in json.dumps(spec["components"]["schemas"]["Prediction"])  # no null type
        assert "MNIST_REJECT_NON_DIGITS" in spec["paths"]["/predict"]["post"]["responses"]["422"]["description"]

    @pytest.mark.parametrize(
        ("score", "threshold", "says"),
        [(0.0312, 0.41, "digit score 0.03, threshold 0.41"), (0.4099, 0.41, "digit score 0.4099, threshold 0.4100")],
    )
    def test_the_refusal_says_score_and_threshold(self, score: float, threshold: float, says: str) -> None:
        refusal = not_a_digit(score, threshold)
        assert refusal.status == 422 and says in refusal.error
        assert "does not look like one handwritten digit" in refusal.error
        assert "one handwritten digit" in refusal.accepted


def test_flagged_images_are_counted() -> None:
    before = metrics.NON_DIGITS._value.get()
    metrics.record(np.full((3, 10), 0.1, np.float32), 0.9, np.array([True, False, False]))
    metrics.record(np.full((2, 10), 0.1, np.float32), 0.9, None)
    assert metrics.NON_DIGITS._value.get() - before == 2


def test_settings(monkeypatch) -> None:
    assert (Settings().digit_threshold, Settings().reject_non_digits) == (None, False)
    monkeypatch.setenv("MNIST_DIGIT_THRESHOLD", "0.35")
    monkeypatch.setenv("MNIST_REJECT_NON_DIGITS", "true")
    assert (Settings().digit_threshold, Settings().reject_non_digits) == (0.35, True)
    for bad in ("0", "1", "1.5", "-0.1"):
        monkeypatch.setenv("MNIST_DIGIT_THRESHOLD", bad)
        with pytest.raises(ValidationError):
            Settings()
