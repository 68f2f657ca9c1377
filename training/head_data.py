"""The frames the digit head learns and is chosen on: digits as users send them, and what is not one.

Training (from MNIST's training split minus the classifier's validation digits, training fonts):
    mnist      each digit twice: once as written, once through the upload augmentation
    rendered   digits drawn as photos or scans and framed by the service (training/rendered.py)
    low-res    digits shrunk to 8x8 or 6-12 px and upscaled again (training/glyphs.low_resolution)
    printed    0-9 in the training font families
    negatives  every kind of training/negatives.py, half through the same augmentation
Validation: the same kinds, drawn from the classifier's validation digits and the validation font
families (other draws, other seeds). Frames are uint8 (N, 28, 28), framed by contract.framing.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np
import torch
from torch import nn

from contract.framing import NoInk, frame
from training import glyphs
from training.augment import upload_like
from training.data import to_float
from training.detector import AUGMENT, blocky
from training.negatives import KINDS, RECIPE, bank
from training.rendered import rendered_frames

if TYPE_CHECKING:
    from training.head import HeadConfig

DIGIT_KINDS = ("mnist", "mnist-augmented", "rendered", "low-res", "printed")
SIZES = {  # frames per kind: training, validation
    "rendered": (12_000, 3_000),
    "low-res": (15_000, 3_000),
    "printed": (20_000, 3_000),
    "negatives": (15_000, 1_000),  # per negative kind
}


def augmented(frames: np.ndarray, share: float, seed: int) -> np.ndarray:
    """share of these uint8 frames through the detector's upload augmentation (as digits get it)."""
    gen = torch.Generator().manual_seed(seed)
    out = frames.copy()
    pick = np.flatnonzero(np.random.default_rng(seed).random(len(frames)) < share)
    for i in range(0, len(pick), 4096):
        idx = pick[i : i + 4096]
        x = blocky(upload_like(to_float(torch.from_numpy(frames[idx])), gen, AUGMENT), gen)  # (B, 1, 28, 28)
        out[idx] = (x.squeeze(1) * 255).round().clamp(0, 255).to(torch.uint8).numpy()
    return out


def _framed(draw, n: int, rng: np.random.Generator) -> np.ndarray:  # type: ignore[no-untyped-def]
    out = np.empty((n, 28, 28), np.uint8)
    i = 0
    while i < n:
        try:
            out[i] = np.round(frame(draw()) * 255).astype(np.uint8)
        except NoInk:
            continue
        i += 1
    return out


def printed_digits(n: int, split: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    fonts = glyphs.font_files(split)
    return _framed(lambda: glyphs.printed(glyphs.DIGITS, fonts, rng)[0], n, rng)


def low_res_digits(digits: np.ndarray, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    picks = digits[rng.integers(len(digits), size=n)]
    it = iter(picks)
    return _framed(lambda: glyphs.low_resolution(next(it), rng), n, rng)


def frames_for(
    split: str, digits: np.ndarray, cache: Path, seed: int = 0, sizes: dict[str, tuple[int, int]] = SIZES
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(frames uint8 (N, 28, 28), is_digit (N,), kind name (N,)) for "train" or "validation"."""
    cache.mkdir(parents=True, exist_ok=True)
    key = "-".join(f"{a}.{b}" for a, b in sizes.values())
    path = cache / f"frames-{split}-{len(digits)}-{seed}-{key}-{RECIPE}.npz"
    if path.exists():
        z = np.load(path)
        return z["frames"], z["is_digit"], z["groups"]
    v = int(split != "train")
    font_split = "train" if split == "train" else "validation"
    s = seed * 1000 + 10 * v
    parts: list[tuple[str, np.ndarray, int]] = []
    t0 = time.time()
    parts += [("mnist", digits, 1), ("mnist-augmented", augmented(digits, 1.0, s), 1)]
    rng = np.random.default_rng(s)
    some = digits[rng.choice(len(digits), size=min(sizes["rendered"][v], len(digits)), replace=False)]
    parts.append(("rendered", rendered_frames(some, seed=s + 1), 1))
    parts.append(("low-res", low_res_digits(digits, sizes["low-res"][v], s + 2), 1))
    parts.append(("printed", augmented(printed_digits(sizes["printed"][v], font_split, s + 3), 0.5, s + 3), 1))
    print(f"  {split} digits drawn ({time.time() - t0:.0f} s)", flush=True)
    neg, kind = bank(sizes["negatives"][v], seed + v, digits, cache=cache, split=font_split)
    neg = augmented(neg, 0.5, s + 4)
    for k, name in enumerate(KINDS):
        parts.append((name, neg[kind == k], 0))
    print(f"  {split} negatives drawn ({time.time() - t0:.0f} s)", flush=True)
    frames = np.concatenate([p[1] for p in parts])
    is_digit = np.concatenate([np.full(len(p[1]), p[2], np.int64) for p in parts])
    groups = np.concatenate([np.full(len(p[1]), p[0]) for p in parts])
    np.savez(path, frames=frames, is_digit=is_digit, groups=groups)
    return frames, is_digit, groups


def fit(
    classifier_onnx: Path,
    data_root: Path,
    out_dir: Path,
    cfg: HeadConfig,
    sizes: dict[str, tuple[int, int]] = SIZES,
    limit: int | None = None,
) -> Path:
    """Draw (or read back) both splits' frames, cache the frozen trunk's features, train the head.

    limit: use only the first `limit` training and validation digits (a quick check).
    """
    import json

    from contract import sha256_file
    from training.config import TrainConfig
    from training.data import load_split, train_val_split
    from training.head import features, train_head
    from training.warmstart import model_from_onnx

    meta = json.loads((classifier_onnx.parent / "metadata.json").read_text())
    tc = TrainConfig.from_dict(meta["train_config"])
    images, labels = load_split(data_root, train=True)
    splits = train_val_split(images, labels, tc.val_size, tc.split_seed)  # the classifier's own split
    classifier = cast(nn.Sequential, model_from_onnx(classifier_onnx, to_float(splits.train_x[:4096])).eval())
    for p in classifier.parameters():
        p.requires_grad_(False)
    t0 = time.time()
    train = frames_for("train", splits.train_x.numpy()[:limit], out_dir / "cache", cfg.seed, sizes)
    val = frames_for("validation", splits.val_x.numpy()[:limit], out_dir / "cache", cfg.seed, sizes)
    print(f"{len(train[0]):,} training and {len(val[0]):,} validation frames ({time.time() - t0:.0f} s)", flush=True)
    t0 = time.time()
    sha = sha256_file(classifier_onnx)
    cache = out_dir / "cache"
    train_f = features(classifier, train[0], cache / f"features2-train-{len(train[0])}-{sha[:8]}.npz")
    val_f = features(classifier, val[0], cache / f"features2-validation-{len(val[0])}-{sha[:8]}.npz")
    print(f"trunk features cached ({time.time() - t0:.0f} s)", flush=True)
    extra = {
        "classifier_onnx": str(classifier_onnx),
        "classifier_sha256": sha,
        "classifier_version": meta["version"],
        "trained_kinds": [*KINDS],
        "digit_kinds": [*DIGIT_KINDS],
        "font_splits": {k: list(v) for k, v in glyphs.FONT_SPLITS.items()},
    }
    return train_head(train_f, train[1], val_f, val[1], val[2], cfg, out_dir, extra)


def score_validation(model_dir: Path, cache: Path) -> dict:
    """An exported graph with a digit_score (any detector) on the head's validation frames, at the
    head's rule: the threshold that keeps 99% of each validation digit kind. Compares detectors."""
    import json

    from training.evaluate import ort_session
    from training.head import choose_threshold, report

    z = np.load(sorted(cache.glob("frames-validation-*.npz"))[0])
    frames, is_digit, groups = z["frames"], z["is_digit"], z["groups"]
    meta = json.loads((model_dir / "metadata.json").read_text())
    session = ort_session(model_dir / "model.onnx")
    x = frames.astype(np.float32)[:, None] / 255.0  # (N, 1, 28, 28)
    name, out = meta["input"]["name"], meta["outputs"]["digit_score"]["name"]
    score = np.concatenate([session.run([out], {name: x[i : i + 1024]})[0] for i in range(0, len(x), 1024)])
    return {
        "model": meta["version"],
        **report(score, is_digit, groups, choose_threshold(score, is_digit, groups, 0.99)),
    }


if __name__ == "__main__":  # python -m training.head_data MODEL_DIR [CACHE]: the comparison docs/detector.md quotes
    import sys

    r = score_validation(Path(sys.argv[1]), Path(sys.argv[2] if len(sys.argv) > 2 else "runs/head/cache"))
    kinds = ", ".join(f"{k} {100 * v:.1f}%" for k, v in r["flagged_by_kind"].items())
    print(f"{r['model']}: {100 * r['flagged']:.2f}% of validation non-digits flagged, AUROC {r['auroc']:.4f} ({kinds})")
