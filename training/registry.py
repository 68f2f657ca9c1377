"""models/: versioned model folders, which one is served, promotion with guards, rollback.

The files and their meaning are the contract's (contract/); this module decides what may land.
A version that lands is also put into BentoML's model store (contract.store), the copy
`bentoml build` packs and `bentoml models export` moves.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

from contract import (
    METADATA_FILE,
    MODEL_FILE,
    SERVED_FILE,
    ContractError,
    Metadata,
    ModelFiles,
    Served,
    read_metadata,
    read_served,
    store,
    sync_image_tags,
    write_served,
)

log = logging.getLogger(__name__)

DEFAULT_FLOOR = 0.995
DEFAULT_MAX_DROP_PP = 0.05


class PromotionError(RuntimeError):
    """A promotion or rollback that was refused; the message says why and how to override."""


def checked_metadata(version_dir: Path) -> Metadata:
    """metadata.json of a version folder, after checking it and model.onnx against the contract."""
    files = ModelFiles.of(version_dir)
    if not files.metadata.exists() or not files.onnx.exists():
        raise PromotionError(f"{version_dir} must hold {MODEL_FILE} and {METADATA_FILE} (from `mnist export`)")
    try:
        return read_metadata(files)
    except ContractError as exc:
        raise PromotionError(f"{exc}; re-export it") from None


def to_store(version_dir: Path) -> str | None:
    """Put a checked version into BentoML's model store ($BENTOML_HOME); its tag, or None where
    BentoML is not installed (a train-only install: `bentoml build` puts it there later)."""
    try:
        import bentoml  # noqa: F401
    except ImportError:
        log.info("bentoml is not installed: %s stays out of the model store until `bentoml build`", version_dir)
        return None
    try:
        return store.put(version_dir)
    except ContractError as exc:
        raise PromotionError(str(exc)) from None


def list_versions(models_dir: Path) -> list[Metadata]:
    """Every version folder's metadata, oldest export first."""
    metas = [read_metadata(ModelFiles.of(p.parent), check_sha256=False) for p in models_dir.glob(f"*/{METADATA_FILE}")]
    return sorted(metas, key=lambda m: m.exported_at or "")


def promote(
    export_dir: Path,
    models_dir: Path,
    floor: float = DEFAULT_FLOOR,
    max_drop_pp: float = DEFAULT_MAX_DROP_PP,
    force: bool = False,
    serve: bool = True,
) -> str:
    """Copy an export into models/<version>/ and serve it, unless it is worse than the guards allow."""
    meta = checked_metadata(export_dir)
    acc = meta.test_accuracy
    state = read_served(models_dir)
    problems = []
    if acc < floor:
        problems.append(f"test accuracy {100 * acc:.2f}% is under the floor {100 * floor:.2f}%")
    if state.served and (models_dir / state.served).exists():
        current = checked_metadata(models_dir / state.served)
        if acc < current.test_accuracy - max_drop_pp / 100:
            problems.append(
                f"test accuracy {100 * acc:.2f}% is more than {max_drop_pp} pp under the served "
                f"{current.version} ({100 * current.test_accuracy:.2f}%)"
            )
    if problems and not force:
        raise PromotionError(f"refusing to promote {meta.version}: {'; '.join(problems)} (--force overrides)")
    for p in problems:
        log.warning("promoting anyway (--force): %s", p)

    dest = models_dir / meta.version
    if dest.exists():
        if checked_metadata(dest).sha256 != meta.sha256:
            raise PromotionError(f"{dest} exists with a different model; versions are never overwritten")
        log.info("%s is already in %s; not copied again", meta.version, models_dir)
    else:
        models_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=models_dir, prefix=".incoming-"))
        tmp.chmod(0o755)  # mkdtemp makes it private; servers may run as another user
        for name in (MODEL_FILE, METADATA_FILE):
            shutil.copy2(export_dir / name, tmp / name)
        tmp.rename(dest)  # atomic: a half-copied version is never visible
    if serve and state.served != meta.version:
        history = [v for v in state.versions() if v != meta.version]
        _serve(models_dir, Served(served=meta.version, history=history))
    return meta.version


def rollback(models_dir: Path, to: str | None = None) -> str:
    """Serve the previous version (or the one named); the current one stays on disk."""
    state = read_served(models_dir)
    if to is None:
        if not state.history:
            raise PromotionError(f"nothing to roll back to: {models_dir / SERVED_FILE} has no earlier version")
        to = state.history[0]
    checked_metadata(models_dir / to)  # exists and is intact
    history = [v for v in state.versions() if v != to]
    if state.history and to == state.history[0]:
        history = [v for v in state.history[1:] if v != to]
    _serve(models_dir, Served(served=to, history=history))
    return to


def _serve(models_dir: Path, state: Served) -> None:
    """Write served.json and carry the change to the deployment: the manifests beside models/
    deploy the image tagged with the served version (the bento reads served.json at build time)."""
    write_served(models_dir, state)
    for path in sync_image_tags(models_dir.resolve().parent, str(state.served)):
        log.info("%s now deploys mnist:%s", path, state.served)
