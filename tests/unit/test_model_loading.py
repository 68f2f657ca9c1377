"""service.model: find the served model, refuse a corrupt one, run it by its metadata's names."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness.tiny_model import write_model_dir
from service.model import Classifier, ModelError, choose_providers, load_metadata, resolve

pytestmark = pytest.mark.unit


@pytest.fixture
def models(tmp_path: Path) -> tuple[Path, str]:
    return tmp_path, write_model_dir(tmp_path)


class TestResolve:
    def test_served_json_names_the_version(self, models) -> None:
        root, version = models
        files = resolve(root)
        assert files.onnx == root / version / "model.onnx"

    def test_explicit_version_wins(self, models, tmp_path) -> None:
        root, _ = models
        other = write_model_dir(tmp_path / "other", serve=False, seed=1)
        (root / other).symlink_to(tmp_path / "other" / other)
        assert resolve(root, version=other).onnx.parent.name == other

    @pytest.mark.parametrize("use_dir", [True, False])
    def test_explicit_path_to_file_or_folder(self, models, use_dir) -> None:
        root, version = models
        path = root / version if use_dir else root / version / "model.onnx"
        assert resolve(Path("/nonexistent"), path=path).metadata == root / version / "metadata.json"

    def test_missing_served_json_says_what_to_do(self, tmp_path) -> None:
        with pytest.raises(ModelError, match=r"served\.json.*MNIST_MODEL_VERSION"):
            resolve(tmp_path)

    def test_missing_model_file(self, models) -> None:
        root, version = models
        (root / version / "model.onnx").unlink()
        with pytest.raises(ModelError, match=r"model\.onnx is missing"):
            resolve(root)

    def test_unknown_version(self, models) -> None:
        with pytest.raises(ModelError, match="missing"):
            resolve(models[0], version="nope-12345678")


class TestIntegrity:
    def test_sha256_mismatch_is_refused(self, models) -> None:
        root, version = models
        with (root / version / "model.onnx").open("ab") as f:
            f.write(b"\0")
        with pytest.raises(ModelError, match="corrupt"):
            load_metadata(resolve(root))

    def test_metadata_missing_keys(self, models) -> None:
        root, version = models
        meta_path = root / version / "metadata.json"
        meta = json.loads(meta_path.read_text())
        del meta["labels"]
        meta_path.write_text(json.dumps(meta))
        with pytest.raises(ModelError, match="labels"):
            load_metadata(resolve(root))

    def test_names_come_from_metadata(self, models) -> None:
        root, version = models
        meta_path = root / version / "metadata.json"
        meta = json.loads(meta_path.read_text())
        meta["outputs"]["probabilities"]["name"] = "probs"
        meta_path.write_text(json.dumps(meta))
        with pytest.raises(ModelError, match="probs"):
            Classifier(resolve(root), "cpu", 1)


class TestInference:
    def test_probabilities_shape_and_sum(self, models) -> None:
        clf = Classifier(resolve(models[0]), "cpu", 1)
        clf.warm_up()
        probs = clf.probabilities(np.random.default_rng(0).random((5, 28, 28), np.float32))
        assert probs.shape == (5, 10)
        np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
        assert clf.probabilities(np.zeros((0, 28, 28), np.float32)).shape == (0, 10)

    def test_auto_provider_falls_back_to_cpu_without_cuda(self) -> None:
        assert choose_providers("auto")[-1] == "CPUExecutionProvider"
        assert choose_providers("cpu") == ["CPUExecutionProvider"]

    def test_cuda_without_cuda_build_is_a_clear_error(self) -> None:
        import onnxruntime as ort

        if "CUDAExecutionProvider" in ort.get_available_providers():
            pytest.skip("this onnxruntime has CUDA")
        with pytest.raises(ModelError, match="gpu"):
            choose_providers("cuda")
