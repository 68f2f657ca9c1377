"""models/: versioned model folders, which one is served, promotion with guards, rollback."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path

from training.export import sha256_file

log = logging.getLogger(__name__)

SERVED_FILE = "served.json"
DEFAULT_FLOOR = 0.995
DEFAULT_MAX_DROP_PP = 0.05


class PromotionError(RuntimeError):
    """A promotion or rollback that was refused; the message says why and how to override."""


def read_served(models_dir: Path) -> dict:
    """{"served": version or None, "history": [older versions, newest first]}."""
    path = models_dir / SERVED_FILE
    if not path.exists():
        return {"served": None, "history": []}
    return json.loads(path.read_text())


def _write_served(models_dir: Path, served: str, history: list[str]) -> None:
    path = models_dir / SERVED_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"served": served, "history": history}, indent=2) + "\n")
    tmp.replace(path)


def read_metadata(version_dir: Path) -> dict:
    """metadata.json of a version folder, after checking model.onnx against its sha256."""
    meta_path, onnx_path = version_dir / "metadata.json", version_dir / "model.onnx"
    if not meta_path.exists() or not onnx_path.exists():
        raise PromotionError(f"{version_dir} must hold model.onnx and metadata.json (from `mnist export`)")
    meta = json.loads(meta_path.read_text())
    if sha256_file(onnx_path) != meta["sha256"]:
        raise PromotionError(f"{onnx_path} does not match the sha256 in its metadata.json; re-export it")
    return meta


def list_versions(models_dir: Path) -> list[dict]:
    """Every version folder's metadata, oldest export first."""
    metas = [json.loads(p.read_text()) for p in models_dir.glob("*/metadata.json")]
    return sorted(metas, key=lambda m: m.get("exported_at", ""))


def promote(
    export_dir: Path,
    models_dir: Path,
    floor: float = DEFAULT_FLOOR,
    max_drop_pp: float = DEFAULT_MAX_DROP_PP,
    force: bool = False,
    serve: bool = True,
) -> str:
    """Copy an export into models/<version>/ and serve it, unless it is worse than the guards allow."""
    meta = read_metadata(export_dir)
    acc = meta["test_accuracy"]
    state = read_served(models_dir)
    problems = []
    if acc < floor:
        problems.append(f"test accuracy {100 * acc:.2f}% is under the floor {100 * floor:.2f}%")
    if state["served"] and (models_dir / state["served"]).exists():
        current = json.loads((models_dir / state["served"] / "metadata.json").read_text())
        if acc < current["test_accuracy"] - max_drop_pp / 100:
            problems.append(
                f"test accuracy {100 * acc:.2f}% is more than {max_drop_pp} pp under the served "
                f"{current['version']} ({100 * current['test_accuracy']:.2f}%)"
            )
    if problems and not force:
        raise PromotionError(f"refusing to promote {meta['version']}: {'; '.join(problems)} (--force overrides)")
    for p in problems:
        log.warning("promoting anyway (--force): %s", p)

    dest = models_dir / meta["version"]
    if dest.exists():
        if read_metadata(dest)["sha256"] != meta["sha256"]:
            raise PromotionError(f"{dest} exists with a different model; versions are never overwritten")
        log.info("%s is already in %s; not copied again", meta["version"], models_dir)
    else:
        models_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=models_dir, prefix=".incoming-"))
        tmp.chmod(0o755)  # mkdtemp makes it private; servers may run as another user
        for name in ("model.onnx", "metadata.json"):
            shutil.copy2(export_dir / name, tmp / name)
        tmp.rename(dest)  # atomic: a half-copied version is never visible
    if serve and state["served"] != meta["version"]:
        history = [v for v in [state["served"], *state["history"]] if v and v != meta["version"]]
        _write_served(models_dir, meta["version"], history)
    return meta["version"]


def rollback(models_dir: Path, to: str | None = None) -> str:
    """Serve the previous version (or the one named); the current one stays on disk."""
    state = read_served(models_dir)
    if to is None:
        if not state["history"]:
            raise PromotionError(f"nothing to roll back to: {models_dir / SERVED_FILE} has no earlier version")
        to = state["history"][0]
    read_metadata(models_dir / to)  # exists and is intact
    history = [v for v in [state["served"], *state["history"]] if v and v != to]
    if to == (state["history"] or [None])[0]:
        history = [v for v in state["history"][1:] if v != to]
    _write_served(models_dir, to, history)
    return to
