"""Promotion guards, immutable versions and one-command rollback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import onnx
import pytest

from contract import IMAGE_TAG_FILES, Served, read_served, sha256_file, version_name, write_served
from training.cli import main
from training.registry import PromotionError, promote, rollback

pytestmark = pytest.mark.training


def _fake_export(tmp_path: Path, smoke_run: dict, name: str, accuracy: float) -> Path:
    """A copy of the smoke export claiming another accuracy (same weights, so same sha256)."""
    out = tmp_path / name
    shutil.copytree(smoke_run["export"], out)
    meta = json.loads((out / "metadata.json").read_text())
    meta["test_accuracy"] = accuracy
    (out / "metadata.json").write_text(json.dumps(meta))
    return out


def test_refuses_under_trained_model_and_accepts_with_force(tmp_path: Path, smoke_run: dict) -> None:
    models = tmp_path / "models"
    assert smoke_run["metadata"]["test_accuracy"] < 0.995  # 1 epoch on 2,000 images
    with pytest.raises(PromotionError, match="under the floor"):
        promote(smoke_run["export"], models)
    assert read_served(models).served is None
    version = promote(smoke_run["export"], models, force=True)
    assert read_served(models).served == version
    assert (models / version / "model.onnx").is_file()


def test_cli_promote_refusal_is_exit_2(tmp_path: Path, smoke_run: dict, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["promote", str(smoke_run["export"]), "--models-dir", str(tmp_path / "m")]) == 2
    assert "--force" in capsys.readouterr().err


def test_refuses_model_worse_than_served(tmp_path: Path, smoke_run: dict) -> None:
    models = tmp_path / "models"
    good = _fake_export(tmp_path, smoke_run, "good", 0.9970)
    promote(good, models, floor=0.0)
    worse = _fake_export(tmp_path, smoke_run, "worse", 0.9964)  # 0.06 pp under
    with pytest.raises(PromotionError, match=r"0\.05 pp under the served"):
        promote(worse, models, floor=0.0)


def test_never_overwrites_a_version(tmp_path: Path, smoke_run: dict) -> None:
    models = tmp_path / "models"
    version = promote(smoke_run["export"], models, force=True)
    (models / version / "metadata.json").write_text(
        json.dumps({**smoke_run["metadata"], "sha256": "0" * 64})
    )  # a different model under the same name
    with pytest.raises(PromotionError):
        promote(smoke_run["export"], models, force=True)


def test_rollback_serves_the_previous_version(tmp_path: Path, smoke_run: dict, mnist_data_dir: Path) -> None:
    models = tmp_path / "models"
    first = promote(smoke_run["export"], models, force=True)
    other = tmp_path / "other"
    shutil.copytree(smoke_run["export"], other)
    # A second, genuinely different version: the same graph with another doc string, so other bytes.
    graph = onnx.load(str(other / "model.onnx"))
    graph.doc_string = "second"
    onnx.save(graph, str(other / "model.onnx"))
    meta = json.loads((other / "metadata.json").read_text())
    meta["sha256"] = sha256_file(other / "model.onnx")
    second_name = meta["version"] = version_name(meta["architecture"], meta["sha256"])
    (other / "metadata.json").write_text(json.dumps(meta))
    assert promote(other, models, force=True) == second_name
    assert read_served(models) == Served(served=second_name, history=[first])
    assert rollback(models) == first
    assert read_served(models).served == first
    assert (models / second_name).is_dir()  # rollback never deletes
    with pytest.raises(PromotionError, match="nothing to roll back"):
        rollback(models)
    assert main(["rollback", second_name, "--models-dir", str(models)]) == 0
    assert read_served(models).served == second_name


def test_promotion_and_rollback_retag_the_deployment(tmp_path: Path, smoke_run: dict, repo_root: Path) -> None:
    """The manifests beside models/ follow served.json with no hand step."""
    for rel in IMAGE_TAG_FILES:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(repo_root / rel, tmp_path / rel)
    models = tmp_path / "models"
    version = promote(smoke_run["export"], models, force=True)
    for rel in IMAGE_TAG_FILES:
        assert f"newTag: {version}\n" in (tmp_path / rel).read_text()
    write_served(models, Served(served=version, history=["lenet5-849842fc"]))
    shutil.copytree(repo_root / "models" / "lenet5-849842fc", models / "lenet5-849842fc")
    assert rollback(models) == "lenet5-849842fc"
    for rel in IMAGE_TAG_FILES:
        text = (tmp_path / rel).read_text()
        assert "newTag: lenet5-849842fc\n" in text and version not in text
