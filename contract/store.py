"""The model hand-off in BentoML's model store: what `bentoml build` packs and `bentoml models
export` / `import` move between machines.

A version lives twice, as the same two files: in models/<version>/ (git: reviewed, diffed,
shipped with every clone) and as `mnist:<version>` in BentoML's model store
($BENTOML_HOME/models, `bentoml models list`), where metadata.json becomes the entry's metadata
and its headline facts its labels. The version name is content addressed, so the two copies
cannot drift: `put` refuses a store entry whose sha256 differs. BentoML is imported only when
these functions run, so the contract stays importable where BentoML is not installed.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from contract import ContractError, Metadata, ModelFiles, read_metadata

MODEL_NAME = "mnist"  # the store's model name (also the Open Inference Protocol's); its version is ours


def tag(version: str) -> str:
    """The store's tag of a version: `mnist:<version>`, e.g. mnist:mnist-cnn-a0914050."""
    return f"{MODEL_NAME}:{version}"


def labels(meta: Metadata) -> dict[str, str]:
    """What `bentoml models list` and BentoCloud can filter on: architecture, accuracy, sha256."""
    return {
        "architecture": meta.architecture,
        "test_accuracy": f"{meta.test_accuracy:.4f}",
        "sha256": meta.sha256,
    }


def _without_nulls(value: Any) -> Any:
    """metadata.json as BentoML's model metadata takes it: no nulls (it refuses None anywhere)."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value if v is not None]
    return value


def stored(version: str) -> ModelFiles | None:
    """The version's files in the model store in force (the global one, or inside an image the
    bento's own), or None when it has no such entry."""
    import bentoml
    from bentoml.exceptions import NotFound

    try:
        model = bentoml.models.get(tag(version))
    except NotFound:
        return None
    return ModelFiles.of(Path(model.path))


def put(version_dir: Path) -> str:
    """Copy a checked version folder into the model store unless it is there already; its tag."""
    files = ModelFiles.of(version_dir)
    meta = read_metadata(files)  # the contract and the sha256 first: the store never holds a bad model
    # One writer at a time on this host: servers starting together put the same versions.
    with (Path(tempfile.gettempdir()) / "mnist-model-store.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _put(files, meta)


def _put(files: ModelFiles, meta: Metadata) -> str:
    there = stored(meta.version)
    if there is not None:
        try:
            same = read_metadata(there).sha256 == meta.sha256
        except ContractError:  # the stored copy is corrupt or mis-described
            same = False
        if not same:
            raise ContractError(
                f"the model store's {tag(meta.version)} is not {files.onnx}: "
                f"remove it (bentoml models delete {tag(meta.version)}) and put it again"
            )
        return tag(meta.version)

    import bentoml
    from bentoml.exceptions import BentoMLException

    try:
        with bentoml.models.create(
            tag(meta.version), labels=labels(meta), metadata=_without_nulls(json.loads(files.metadata.read_text()))
        ) as model:
            for f in (files.onnx, files.metadata):
                shutil.copy2(f, Path(model.path) / f.name)
    except BentoMLException:  # another process put the same version first
        if stored(meta.version) is None:
            raise
    return tag(meta.version)
