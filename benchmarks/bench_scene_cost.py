"""What the scene stage (contract/scene.py) costs per upload, on one core.

    python -m benchmarks.bench_scene_cost                  # 200 of each, writes BENCHMARKS.md
    python -m benchmarks.bench_scene_cost -n 50 --no-write

Uploads are decoded once; then each is framed by contract.photo.to_frame (what /predict runs
after decoding) and, separately, the scene stage's own steps are timed on the working-size
pixels: for a photo of a scene, the plain check, the surface check and find_digit; for a plain
digit upload, only the checks that decide to skip the stage. Scene photos are harness.scenes
renderings of MNIST test digits resized to 1,000 px on their long side; plain uploads are the
`photo` kind (200-800 px) and 28x28 PNGs. OpenCV runs one thread (contract/scene.py sets it).
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.report import write_section
from contract import photo, scene
from contract.framing import crop_mask, peak
from harness.mnist import load_mnist
from harness.uploads import SCENES, render

REPO = Path(__file__).resolve().parents[1]
START, END = "<!-- bench_scene_cost:start -->", "<!-- bench_scene_cost:end -->"


def _ms(fn: Callable[[], object], repeat: int = 3) -> float:
    """The best of `repeat` runs of fn, in ms (the least disturbed by the rest of the machine)."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return 1000.0 * best


def _stage_ms(rgb: np.ndarray) -> float:
    """What photo.digit_ink adds to the ink map, in ms (best of 3): the checks that decide to skip
    the stage, and the stage itself when it runs."""
    dark = photo.is_dark_ink(rgb)
    ink = photo.ink_map(rgb, dark)
    top = peak(ink)
    mask = crop_mask(ink, top)  # framing's own crop mask and peak: the plain check reuses them

    def stage() -> None:
        sheet = not dark and scene.bright_surface(rgb.mean(-1))
        if sheet or (dark and not scene.looks_plain(ink, mask, top)):
            photo.find_scene(rgb, True)

    return _ms(stage)


def _row(name: str, stage: list[float], total: list[float]) -> str:
    p90 = float(np.percentile(stage, 90))
    return (
        f"| {name} | {len(stage)} | {statistics.median(stage):.2f} ms | {p90:.2f} ms | "
        f"{statistics.median(total):.2f} ms |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=200, help="uploads of each sort (default: 200)")
    parser.add_argument("--write", type=Path, default=REPO / "BENCHMARKS.md")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    images, _ = load_mnist(split="test")
    rng = np.random.default_rng(0)
    picks = rng.choice(len(images), size=args.n, replace=False)
    sorts: dict[str, list[Image.Image]] = {"scene photo, 1,000 px": [], "plain photo, 200-800 px": [], "28x28 PNG": []}
    for j, i in enumerate(picks):
        shot = Image.open(io.BytesIO(render(images[i], SCENES[j % len(SCENES)], rng)[0])).convert("RGB")
        scale = 1000 / max(shot.size)
        sorts["scene photo, 1,000 px"].append(shot.resize((round(shot.width * scale), round(shot.height * scale))))
        sorts["plain photo, 200-800 px"].append(
            Image.open(io.BytesIO(render(images[i], "photo", rng)[0])).convert("RGB")
        )
        sorts["28x28 PNG"].append(Image.open(io.BytesIO(render(images[i], "png28", rng)[0])).convert("L"))
    rows = [
        "| uploads | n | scene stage, median | scene stage, p90 | whole framing (to_frame), median |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, imgs in sorts.items():
        stage, total = [], []
        for img in imgs:
            try:
                total.append(_ms(lambda img=img: photo.to_frame(img)))
            except photo.NoInk:
                continue
            rgb = photo._as_float(photo._small(img))
            # a 28x28 MNIST frame never reaches the stage (photo.already_mnist answers first)
            framed = rgb.shape[:2] == (28, 28) and photo.already_mnist(rgb) is not None
            stage.append(0.0 if framed else _stage_ms(rgb))
        rows.append(_row(name, stage, total))
        print(rows[-1], flush=True)
    table = "\n".join(rows)
    print(table)
    if args.no_write:
        return
    body = (
        "## Uploads: what the scene stage costs\n\n"
        f"`python -m benchmarks.bench_scene_cost -n {args.n}` (one core; run under `flock /tmp/timing.lock` so that "
        "no other timing overlaps): the scene stage's own steps (`contract/scene.py`: the plain check, and for "
        "a scene the lighting, printed lines, surface and choice of the digit) per upload, best of 3, beside "
        "the whole of `contract.photo.to_frame` for the same upload (decoding not included). The stage runs "
        "at the working size (384 px on the long side), so a bigger photo costs it no more.\n\n"
        f"{table}\n"
    )
    write_section(args.write, START, END, body)
    print(f"wrote {args.write}")


if __name__ == "__main__":
    main()
