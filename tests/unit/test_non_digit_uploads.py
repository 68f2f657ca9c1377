"""harness.non_digits: seeded uploads of every non-digit kind that decode, frame and stay a sane size;
and benchmarks.bench_non_digits end to end on a stub detector."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from benchmarks import bench_non_digits
from harness import non_digits
from harness.non_digits import HELD_OUT_KINDS, KINDS, TRAINED_KINDS, iter_non_digits, sample_non_digits
from harness.tiny_model import tiny_onnx, write_model_dir
from harness.uploads import PHOTO_LIKE
from service.errors import BadInput
from service.images.frames import Budget, read_frames

pytestmark = pytest.mark.unit
N = 12  # per kind: enough to see each drawn kind's three ways of rendering


@pytest.fixture(scope="module")
def uploads(mnist_data_dir: Path) -> list[non_digits.NonDigit]:
    return list(iter_non_digits(KINDS, N, seed=0, mnist_dir=mnist_data_dir))


def test_kinds_split_into_trained_and_held_out() -> None:
    assert set(TRAINED_KINDS).isdisjoint(HELD_OUT_KINDS)
    assert set(KINDS) == {*TRAINED_KINDS, *HELD_OUT_KINDS} and len(KINDS) == 9


def test_same_arguments_same_bytes(mnist_data_dir: Path) -> None:
    a = sample_non_digits(KINDS, 3, seed=7, mnist_dir=mnist_data_dir)
    b = sample_non_digits(KINDS, 3, seed=7, mnist_dir=mnist_data_dir)
    c = sample_non_digits(KINDS, 3, seed=8, mnist_dir=mnist_data_dir)
    assert a == b
    assert [kind for _, kind in a] == [k for k in KINDS for _ in range(3)]
    assert sum(x != y for (x, _), (y, _) in zip(a, c, strict=True)) >= len(a) - 1  # another seed, other uploads


def test_a_kind_does_not_depend_on_the_others_or_on_n(mnist_data_dir: Path) -> None:
    """The regression test's small sample is the benchmark's first uploads, whatever else is drawn."""
    alone = sample_non_digits(("shapes",), 4, seed=0, mnist_dir=mnist_data_dir)
    among = sample_non_digits(("letters", "shapes"), 6, seed=0, mnist_dir=mnist_data_dir)
    assert alone == [u for u in among if u[1] == "shapes"][:4]


def test_every_upload_decodes_as_its_content_type_at_a_sane_size(uploads: list[non_digits.NonDigit]) -> None:
    formats = {"image/png": "PNG", "image/jpeg": "JPEG", "image/gif": "GIF", "image/bmp": "BMP"}
    formats |= {"image/webp": "WEBP", "image/tiff": "TIFF"}
    assert {u.kind for u in uploads} == set(KINDS)
    for u in uploads:
        img = Image.open(io.BytesIO(u.data))
        img.load()
        assert img.format == formats[u.content_type], (u.kind, u.rendering, img.format)
        assert min(img.size) >= 8 and max(img.size) <= 1000, (u.kind, u.rendering, img.size)
        assert 60 < len(u.data) < 1_000_000, (u.kind, u.rendering, len(u.data))
        rgba = img.convert("RGBA")  # canvas exports draw in alpha: lay them on white paper
        grey = np.asarray(Image.alpha_composite(Image.new("RGBA", img.size, "white"), rgba).convert("L"), np.float32)
        drawn = u.kind not in ("textures", "photos", "photo-crops")  # a crop of sky may be nearly flat
        assert np.ptp(grey) > 60 or not drawn, (u.kind, u.rendering)  # ink on paper


def test_drawn_kinds_come_clean_as_frames_and_as_photos(uploads: list[non_digits.NonDigit]) -> None:
    for kind in ("letters", "two-digit", "scribbles", "symbols", "three-digit", "shapes"):
        seen = {u.rendering for u in uploads if u.kind == kind}
        assert "clean" in seen and seen & set(PHOTO_LIKE), (kind, seen)
    assert {u.rendering for u in uploads if u.kind in ("photos", "photo-crops")} == {"picture"}


def test_the_service_frames_nearly_all_of_them(uploads: list[non_digits.NonDigit]) -> None:
    """A few flat crops and smooth gradients have no ink (a 422); the rest reach the model."""
    budget = Budget(image_pixels=1 << 24, request_pixels=1 << 26, deadline=time.monotonic() + 600)
    refused: dict[str, int] = {}
    for u in uploads:
        try:
            frame = read_frames([u.data], budget, "an image")
            assert frame.shape == (1, 28, 28) and frame.max() > 0
        except BadInput as exc:
            assert exc.status == 422, (u.kind, exc.error)
            refused[u.kind] = refused.get(u.kind, 0) + 1
    assert not {k: n for k, n in refused.items() if n > N // 3}, refused


def test_symbols_fall_back_to_pillows_font(monkeypatch: pytest.MonkeyPatch, mnist_data_dir: Path) -> None:
    monkeypatch.setattr(non_digits, "SYMBOL_FONTS", "/nonexistent/Liberation*.ttf")
    ups = list(iter_non_digits(("symbols",), 3, seed=0, mnist_dir=mnist_data_dir))
    assert len(ups) == 3 and all(Image.open(io.BytesIO(u.data)).size for u in ups)


def test_unknown_kind_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"unknown non-digit kinds.*known: letters"):
        sample_non_digits(("circles",), 1)


def _with_detector(graph: bytes) -> bytes:
    """A stub detector added to a graph: digit_score = the top probability."""
    model = onnx.load_from_string(graph)
    model.graph.initializer.append(numpy_helper.from_array(np.array([1], np.int64), "score_axes"))
    model.graph.node.append(helper.make_node("ReduceMax", ["probabilities", "score_axes"], ["digit_score"], keepdims=0))
    model.graph.output.append(helper.make_tensor_value_info("digit_score", TensorProto.FLOAT, ["N"]))
    onnx.checker.check_model(model)
    return model.SerializeToString()


# the whole benchmark, end to end: `make test` runs it, `make check` does not
@pytest.mark.slow
def test_bench_runs_end_to_end_on_a_stub_detector(tmp_path: Path, mnist_data_dir: Path) -> None:
    outputs = {name: {"name": name, "shape": ["N", 10]} for name in ("logits", "probabilities")}
    version = write_model_dir(
        tmp_path,
        serve=False,
        onnx_bytes=_with_detector(tiny_onnx()),
        outputs={**outputs, "digit_score": {"name": "digit_score", "shape": ["N"]}},
        digit_detector={"output": "digit_score", "threshold": 0.5, "fitted_on": "nothing: a stub"},
    )
    out = tmp_path / "out"
    args = ["--model", str(tmp_path / version), "--no-compare", "--n", "2", "--per-kind", "1"]
    args += ["--data-dir", str(mnist_data_dir), "--json", str(out / "r.json"), "--png", str(out / "r.png")]
    args += ["--write", str(out / "B.md")]
    bench_non_digits.main(args)
    results = json.loads((out / "r.json").read_text())
    assert results["model"] == version and results["digit_detector"]["threshold"] == 0.5
    rows = results["rows"]
    assert rows["MNIST test digits"]["n"] == 10_000 and rows["held-out kinds together"]["n"] == 10
    assert set(rows["symbols"]["flagged"]) == {"digit_score", f"confidence {version}"}
    assert 0.0 <= rows["held-out kinds together"]["auroc_vs_mnist"]["digit_score"] <= 1.0
    assert set(results["verdict"]["met"]) == {"keep", "flag", "auroc"}
    md = (out / "B.md").read_text()
    assert bench_non_digits.START in md and "python -m benchmarks.bench_non_digits --model" in md
    assert Image.open(out / "r.png").size[0] > 800
