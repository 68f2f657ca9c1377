"""The model hand-off in BentoML's model store: `put` copies a checked version in once, with its
metadata; a bento's service (served.json but no version folders) finds its model there."""

from __future__ import annotations

from pathlib import Path

import bentoml
import pytest

from contract import ContractError, Served, read_metadata, sha256_file, store, write_served
from harness.tiny_model import write_model_dir
from service.model import ModelError, resolve
from training.registry import to_store

pytestmark = pytest.mark.unit


def test_put_copies_the_version_with_its_metadata_and_labels(tmp_path: Path) -> None:
    version = write_model_dir(tmp_path, serve=False, seed=11)
    assert to_store(tmp_path / version) == f"mnist:{version}"
    model = bentoml.models.get(f"mnist:{version}")
    meta = read_metadata(store.stored(version))  # sha256 checked against the stored graph
    assert sha256_file(Path(model.path) / "model.onnx") == sha256_file(tmp_path / version / "model.onnx")
    assert model.info.labels == {
        "architecture": "tiny",
        "test_accuracy": f"{meta.test_accuracy:.4f}",
        "sha256": meta.sha256,
    }
    assert model.info.metadata["version"] == version
    assert store.put(tmp_path / version) == f"mnist:{version}"  # a second put changes nothing
    assert len([m for m in bentoml.models.list("mnist") if m.tag.version == version]) == 1


def test_put_refuses_a_model_that_breaks_the_contract(tmp_path: Path) -> None:
    version = write_model_dir(tmp_path, serve=False, seed=12)
    (tmp_path / version / "model.onnx").write_bytes(b"not the graph metadata.json describes")
    with pytest.raises(ContractError, match="corrupt"):
        store.put(tmp_path / version)
    assert store.stored(version) is None


def test_put_refuses_a_store_copy_that_is_not_the_version(tmp_path: Path) -> None:
    version = write_model_dir(tmp_path, serve=False, seed=13)
    store.put(tmp_path / version)
    store.stored(version).onnx.write_bytes(b"changed in the store")
    with pytest.raises(ContractError, match=f"bentoml models delete mnist:{version}"):
        store.put(tmp_path / version)


def test_a_bento_finds_its_models_in_the_store(tmp_path: Path) -> None:
    """A bento packs served.json but no version folder: the service reads the store's copy."""
    version = write_model_dir(tmp_path / "checkout", serve=False, seed=14)
    store.put(tmp_path / "checkout" / version)
    bento_models = tmp_path / "bento" / "models"
    write_served(bento_models, Served(served=version))
    files = resolve(bento_models)
    assert files.onnx.parent == Path(bentoml.models.get(f"mnist:{version}").path)
    write_served(bento_models, Served(served="tiny-0badc0de"))
    with pytest.raises(ModelError, match=r"tiny-0badc0de is missing: not in .* nor in BentoML's model store"):
        resolve(bento_models)
