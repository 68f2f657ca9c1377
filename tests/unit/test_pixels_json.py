"""service.transport.pixels and service.answers: the /predict_pixels JSON rules and the Prediction shape."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pydantic import TypeAdapter

from service.answers import Prediction, prediction_answers, predictions_json
from service.errors import BadInput
from service.transport.pixels import parse_pixels, pixels_to_array

pytestmark = pytest.mark.unit


def _body(images: object) -> bytes:
    return json.dumps({"images": images}).encode()


class TestPixelValues:
    def test_integers_are_read_as_0_to_255(self) -> None:
        img = np.full((28, 28), 255, dtype=int).tolist()
        assert pixels_to_array(img).max() == pytest.approx(1.0)

    def test_floats_are_read_as_0_to_1(self) -> None:
        img = np.full((28, 28), 0.5).tolist()
        out = pixels_to_array(img)
        assert out.dtype == np.float32 and out.max() == pytest.approx(0.5)

    @pytest.mark.parametrize(
        ("value", "message"),
        [
            (np.zeros((27, 28)).tolist(), "shape [27, 28]"),
            (np.zeros((28, 28, 1)).tolist(), "shape [28, 28, 1]"),
            ([[0] * 28] * 27 + [[0] * 27], "rows of different lengths"),
            ([["a"] * 28] * 28, "must be numbers"),
            ([[True] * 28] * 28, "must be numbers"),
            (np.full((28, 28), 1.5).tolist(), "[0.0, 1.0]"),
            (np.full((28, 28), -0.1).tolist(), "[0.0, 1.0]"),
            (np.full((28, 28), 256, dtype=int).tolist(), "[0, 255]"),
            (np.full((28, 28), -1, dtype=int).tolist(), "[0, 255]"),
        ],
    )
    def test_bad_values_are_named(self, value: object, message: str) -> None:
        with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
            pixels_to_array(value)


class TestRequestBody:
    def test_many_images_stack_in_order(self) -> None:
        imgs = [np.full((28, 28), i, dtype=int).tolist() for i in range(3)]
        out = parse_pixels(_body(imgs), limit=10, accepted="x")
        assert out.shape == (3, 28, 28)
        np.testing.assert_allclose(out[:, 0, 0], np.arange(3) / 255.0)

    @pytest.mark.parametrize(
        ("body", "status", "message"),
        [
            (b"", 400, "empty"),
            (b"{not json", 400, "not valid JSON"),
            (b"[1, 2, 3]", 422, "JSON object"),
            (b'{"pixels": []}', 422, "images: Field required"),
            (b'{"images": []}', 422, "at least 1"),
            (b'{"images": "abc"}', 422, "images"),
            (_body([np.zeros((28, 28)).tolist(), np.zeros((3, 3)).tolist()]), 422, "images[1]"),
            (json.dumps({"images": [[[float("nan")] * 28] * 28]}).encode(), 422, "NaN"),
        ],
    )
    def test_bad_bodies_are_refused_with_what_was_wrong(self, body: bytes, status: int, message: str) -> None:
        with pytest.raises(BadInput) as info:
            parse_pixels(body, limit=10, accepted="28x28 arrays")
        assert info.value.status == status
        assert message in info.value.error
        assert info.value.body() == {"error": info.value.error, "accepted": "28x28 arrays"}

    def test_too_many_images(self) -> None:
        imgs = [np.zeros((28, 28), dtype=int).tolist()] * 4
        with pytest.raises(BadInput) as info:
            parse_pixels(_body(imgs), limit=3, accepted="x")
        assert info.value.status == 413 and "limit is 3" in info.value.error


def test_predictions_follow_the_probabilities() -> None:
    probs = np.eye(10, dtype=np.float32)[[3, 7]] * 0.9 + 0.01  # (2, 10)
    out = [Prediction.model_validate_json(a) for a in prediction_answers(probs, list(range(10)), "v1")]
    assert out == TypeAdapter(list[Prediction]).validate_json(predictions_json(probs, list(range(10)), "v1"))
    assert [p.digit for p in out] == [3, 7]
    assert out[0].confidence == pytest.approx(0.91)
    assert len(out[1].probabilities) == 10 and out[1].model_version == "v1"


class TestLoadJson:
    """transport.pixels.load_json: json.loads, one image at a time, for {"images": [...]} only."""

    def _load(self, body: bytes, limit: int = 10):
        from service.transport.pixels import load_json

        return load_json(body, limit, "x")

    @pytest.mark.parametrize(
        "body",
        [
            b'{"images": []}',
            b' { "images" : [ [[1, 2]], [[0.5]] ] } ',
            b'{"images":[[[1e-3,2]],[[NaN]]]}',
            b"[1, 2]",
            b'{"pixels": 1}',
        ],
    )
    def test_reads_what_json_loads_reads(self, body: bytes) -> None:
        assert json.dumps(self._load(body)) == json.dumps(json.loads(body))

    @pytest.mark.parametrize("body", [b'{"images": [[1] [2]]}', b'{"images": [[1],', b'{"images": [1]'])
    def test_malformed_is_a_json_error(self, body: bytes) -> None:
        with pytest.raises(ValueError):
            self._load(body)

    def test_other_keys_are_refused_unparsed(self) -> None:
        with pytest.raises(BadInput) as info:
            self._load(b'{"images": [], "junk": [' + b"0," * 50_000 + b"0]}")
        assert info.value.status == 422 and "nothing else" in info.value.error

    def test_a_big_body_of_another_shape_is_refused_unparsed(self) -> None:
        with pytest.raises(BadInput) as info:
            self._load(b'{"junk": [' + b"0," * 50_000 + b'0], "images": []}')
        assert info.value.status == 422

    def test_the_image_limit_stops_the_parse(self) -> None:
        body = b'{"images": [[[0]], [[0]], [[0]], [[0]], not even JSON after the limit'

        with pytest.raises(BadInput) as info:
            self._load(body, limit=3)
        assert info.value.status == 413
