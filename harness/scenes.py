"""MNIST digits photographed the way people photograph paper: the scene around the digit.

The sheet on a table (turned, partly out of the picture), photographed at an angle, under a
hard or a soft shadow, on ruled or squared paper, inside a printed form box or one box of a
row, on a whiteboard with glare, beside a short printed label. Every parameter is drawn from a
wide range, and the digit stays something a person reads at a glance. harness.uploads.render
draws these kinds too (its SCENES group); numpy + Pillow only, like the rest of the harness.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

SCENES: tuple[str, ...] = (
    "scene_table",  # a sheet on a table, turned up to 35 degrees, partly out of the picture
    "scene_keystone",  # the sheet photographed at an angle: a trapezoid, the table in the corners
    "scene_shadow_hard",  # a hand's or a phone's sharp shadow across part of the sheet
    "scene_shadow_soft",  # the same shadow with a wide penumbra
    "scene_ruled",  # ruled notebook paper with a margin line, the digit across the lines
    "scene_squared",  # squared (graph) paper
    "scene_form_box",  # written inside a printed box of a form, the form around it
    "scene_box_row",  # one box of a row: the neighbours' walls and strokes at the edges
    "scene_whiteboard",  # marker on a whiteboard, glare, ghosts of erased writing, its frame
    "scene_label",  # the digit beside a short printed label ("No.", "Qty:")
)

_PENS = ((20, 40, 160), (25, 25, 30), (10, 10, 10), (60, 20, 120), (40, 40, 60))
_MARKERS = ((20, 20, 25), (25, 50, 170), (170, 25, 30), (20, 110, 45))
_LABELS = ("No.", "Qty:", "Age", "Box", "Nr.", "Seat", "Item:", "Class", "Q.", "Row")


def _digit_ink(digit28: np.ndarray, hw: tuple[int, int], height: int, centre: tuple[int, int], angle: float,
               width: int = 0) -> np.ndarray:  # fmt: skip
    """Ink coverage (H, W) float32 in [0, 1]: the digit `height` px tall (its 20-px box), centred
    at `centre` (row, col), turned by `angle` degrees, strokes thickened by a `width` max filter.
    `digit28` may be wider than 28 (a string of digits 28 rows high): it keeps its aspect."""
    frame = max(28, round(height * 28 / 20))
    across = max(frame, round(frame * digit28.shape[1] / digit28.shape[0]))
    big = Image.fromarray(digit28, mode="L").resize((across, frame), Image.Resampling.BICUBIC)
    if width > 1:
        big = big.filter(ImageFilter.MaxFilter(width | 1)).filter(ImageFilter.GaussianBlur(width / 5))
    if angle:
        big = big.rotate(angle, resample=Image.Resampling.BICUBIC, fillcolor=0, expand=across > frame)
    layer = Image.new("L", (hw[1], hw[0]), 0)
    layer.paste(big, (centre[1] - big.width // 2, centre[0] - big.height // 2))
    return np.clip((np.asarray(layer, np.float32) / 255.0 - 0.1) / 0.6, 0.0, 1.0)


def _paint(img: np.ndarray, cover: np.ndarray, rgb: tuple[float, ...] | np.ndarray) -> np.ndarray:
    """Paint colour `rgb` over (H, W, 3) float `img` where `cover` (H, W) in [0, 1] says."""
    c = cover[..., None]
    return img * (1.0 - c) + np.asarray(rgb, np.float32) * c


def _paper(hw: tuple[int, int], rng: np.random.Generator, base: float | None = None) -> np.ndarray:
    """Plain paper (H, W, 3) float32, warm or cool white, a little grain."""
    b = float(rng.uniform(205, 248)) if base is None else base
    tint = (b, b - rng.uniform(0, 8), b - rng.uniform(0, 18))
    img = np.empty((*hw, 3), np.float32)
    img[:] = tint
    return img + rng.normal(0.0, 1.5, (*hw, 1)).astype(np.float32)


def _lines(hw: tuple[int, int], spacing: float, width: float, offset: float, vertical: bool = False) -> np.ndarray:
    """Cover (H, W) of evenly spaced printed lines, anti-aliased."""
    h, w = hw
    pos = np.arange(w if vertical else h, dtype=np.float32)
    d = np.abs(((pos - offset) % spacing + spacing / 2) % spacing - spacing / 2)  # distance to a line
    cover = np.clip(width / 2 + 0.5 - d, 0.0, 1.0)
    return np.broadcast_to(cover[None, :] if vertical else cover[:, None], hw).astype(np.float32)


def _rect(hw: tuple[int, int], top: float, left: float, bottom: float, right: float, width: float) -> np.ndarray:
    """Cover (H, W) of a printed rectangle's walls (outer edges as given), anti-aliased."""
    yy = np.arange(hw[0], dtype=np.float32)[:, None]
    xx = np.arange(hw[1], dtype=np.float32)[None, :]
    inside_y = np.clip(np.minimum(yy - top, bottom - yy) + 0.5, 0, 1)
    inside_x = np.clip(np.minimum(xx - left, right - xx) + 0.5, 0, 1)
    outer = inside_y * inside_x
    inner_y = np.clip(np.minimum(yy - top - width, bottom - width - yy) + 0.5, 0, 1)
    inner_x = np.clip(np.minimum(xx - left - width, right - width - xx) + 0.5, 0, 1)
    return (outer - outer * inner_y * inner_x).astype(np.float32)


def _table(hw: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A table top (H, W, 3) float32: wood with grain, a dark desk, grey laminate or a cloth."""
    h, w = hw
    style = int(rng.integers(4))
    colour = np.asarray([(150, 100, 60), (50, 45, 45), (120, 120, 118), (70, 90, 120)][style], np.float32)
    colour = colour * rng.uniform(0.7, 1.25)
    img = np.empty((h, w, 3), np.float32)
    img[:] = colour
    if style == 0:  # wood grain: stretched noise along a random direction
        small = rng.normal(0.0, 1.0, (max(2, h // 40), max(2, w // 3))).astype(np.float32)
        grain = np.asarray(Image.fromarray(small, mode="F").resize((w, h), Image.Resampling.BICUBIC))
        if rng.random() < 0.5:
            grain = np.asarray(Image.fromarray(grain.T.copy(), mode="F").resize((w, h), Image.Resampling.BICUBIC))
        img *= (1.0 + 0.12 * grain)[..., None]
    elif style == 3:  # cloth: fine weave
        img *= (1.0 + 0.06 * rng.normal(0.0, 1.0, (h, w)).astype(np.float32))[..., None]
    return img + rng.normal(0.0, 3.0, (h, w, 1)).astype(np.float32)


def _light(hw: tuple[int, int], rng: np.random.Generator, strength: float) -> np.ndarray:
    """A lamp's gradient and vignette (H, W, 1) in [1 - strength, 1]."""
    h, w = hw
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    yy, xx = yy / max(h - 1, 1) - 0.5, xx / max(w - 1, 1) - 0.5
    theta = rng.uniform(0, 2 * np.pi)
    ramp = xx * np.cos(theta) + yy * np.sin(theta)
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    return (1.0 - strength * (0.7 * ramp + 0.6 * (xx**2 + yy**2)))[..., None]


def _shadow(hw: tuple[int, int], rng: np.random.Generator, blur: float) -> np.ndarray:
    """A shadow's cover (H, W) in [0, 1]: a half-plane (phone, ruler) or a hand's blob."""
    h, w = hw
    img = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(img)
    if rng.random() < 0.5:  # a straight edge at any angle through the picture's middle half
        theta = rng.uniform(0, 2 * np.pi)
        cy, cx = rng.uniform(0.25, 0.75) * h, rng.uniform(0.25, 0.75) * w
        nx, ny = np.cos(theta), np.sin(theta)
        far = 3 * (h + w)
        pts = [(cx - ny * far, cy + nx * far), (cx + ny * far, cy - nx * far)]
        pts += [(pts[1][0] + nx * far, pts[1][1] + ny * far), (pts[0][0] + nx * far, pts[0][1] + ny * far)]
        draw.polygon(pts, fill=255)
    else:  # a hand: a palm and a few fingers coming in from one side
        side = int(rng.integers(4))
        cy, cx = [(0.0, rng.uniform(0.2, 0.8)), (1.0, rng.uniform(0.2, 0.8)),
                  (rng.uniform(0.2, 0.8), 0.0), (rng.uniform(0.2, 0.8), 1.0)][side]  # fmt: skip
        r = rng.uniform(0.25, 0.45) * min(h, w)
        py, px = cy * h, cx * w
        draw.ellipse((px - r, py - r, px + r, py + r), fill=255)
        into = np.array([[1, 0], [-1, 0], [0, 1], [0, -1]][side], np.float64)  # (dy, dx) into the picture
        for k in range(int(rng.integers(2, 5))):
            spread = (k - 1.5) * 0.5 * r
            tip = np.array([py, px]) + into * r * rng.uniform(1.4, 2.0) + into[::-1] * spread
            base = np.array([py, px]) + into[::-1] * spread * 0.6
            fw = r * rng.uniform(0.15, 0.25)
            draw.line([(base[1], base[0]), (tip[1], tip[0])], fill=255, width=int(fw * 2))
            draw.ellipse((tip[1] - fw, tip[0] - fw, tip[1] + fw, tip[0] + fw), fill=255)
    if blur:
        img = img.filter(ImageFilter.GaussianBlur(blur))
    return np.asarray(img, np.float32) / 255.0


def _perspective_coeffs(out_pts: np.ndarray, in_pts: np.ndarray) -> tuple[float, ...]:
    """Pillow's PERSPECTIVE data mapping output pixels to input pixels, from 4 point pairs (x, y)."""
    a = []
    for (x, y), (u, v) in zip(out_pts, in_pts, strict=True):
        a.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        a.append([0, 0, 0, x, y, 1, -v * x, -v * y])
    return tuple(np.linalg.solve(np.asarray(a, np.float64), in_pts.reshape(8).astype(np.float64)))


def _place_sheet(sheet: np.ndarray, spot: tuple[int, int], photo_hw: tuple[int, int], rng: np.random.Generator,
                 angle: float, where: tuple[float, float], keystone: float = 0.0) -> np.ndarray:  # fmt: skip
    """The sheet (h, w, 3) lying on a table in a photo of `photo_hw`, turned by `angle`, optionally
    seen at an angle (`keystone`: how much narrower its far edge is), with the sheet's `spot`
    (row, col) landing at `where` (fractions of the photo). (H, W, 3) float32."""
    h, w = sheet.shape[:2]
    ph, pw = photo_hw
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float64)  # (x, y)
    c, s = np.cos(np.radians(angle)), np.sin(np.radians(angle))
    turned = (corners - [spot[1], spot[0]]) @ np.array([[c, s], [-s, c]])  # about the spot
    if keystone:  # squeeze the far edge towards the sheet's axis, and foreshorten
        far = int(rng.integers(4))  # which side is farther from the camera
        turned = np.roll(turned, -far, axis=0)  # corners 0 and 1 are now the far edge
        mid = turned.mean(0)
        turned[:2] = mid + (turned[:2] - mid) * [[1 - keystone], [1 - keystone]]
        turned[:2] += (turned[2:][::-1] - turned[:2]) * keystone * 0.4  # foreshortened depth
        turned = np.roll(turned, far, axis=0)
    placed = turned + np.array([where[1] * pw, where[0] * ph])
    coeffs = _perspective_coeffs(placed, corners)
    planes = [Image.fromarray(np.ascontiguousarray(sheet[..., k]), mode="F") for k in range(3)]
    alpha = Image.new("F", (w, h), 1.0)
    warp = [p.transform((pw, ph), Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BILINEAR)
            for p in (*planes, alpha)]  # fmt: skip
    arrays = [np.asarray(p, np.float32) for p in warp]
    table = _table(photo_hw, rng)
    a = np.clip(arrays[3], 0.0, 1.0)[..., None]
    return np.stack(arrays[:3], axis=-1) * a + table * (1.0 - a)


def _font(px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's bundled scalable font at `px` pixels."""
    return ImageFont.load_default(size=max(8, px))


def _text(hw: tuple[int, int], text: str, px: int, top_left: tuple[int, int]) -> np.ndarray:
    """Cover (H, W) of printed text."""
    img = Image.new("L", (hw[1], hw[0]), 0)
    ImageDraw.Draw(img).text((top_left[1], top_left[0]), text, fill=255, font=_font(px))
    return np.asarray(img, np.float32) / 255.0


def _finish(img: np.ndarray, rng: np.random.Generator, light: float, noise: float) -> bytes:
    """Lamp light, sensor noise, then the phone's JPEG."""
    img = img * _light(img.shape[:2], rng, light)
    img = img + rng.normal(0.0, noise, img.shape).astype(np.float32)
    out = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    buf = io.BytesIO()
    out.save(buf, format="JPEG", quality=int(rng.integers(75, 93)))
    return buf.getvalue()


def _photo_size(rng: np.random.Generator) -> tuple[int, int]:
    """A phone photo's (H, W): 640-1100 px on the long side, portrait or landscape."""
    long = int(rng.integers(640, 1101))
    short = int(long * rng.uniform(0.62, 0.8))
    return (long, short) if rng.random() < 0.5 else (short, long)


def _fit(height: int, across: int, aspect: float) -> int:
    """The digit box's height, lowered so that a string `aspect` times as wide as it is high
    (its 28-row frame) spans at most 85% of `across` px; a lone digit's is left as it is."""
    return min(height, int(0.85 * across * 20 / 28 / aspect)) if aspect > 1 else height


def _within(col: int, across: int, height: int, aspect: float) -> int:
    """A string's centre column, moved in so that all of it is in the `across` px."""
    if aspect <= 1:
        return col
    half = round(height * 28 / 20 * aspect) // 2 + 1
    return int(np.clip(col, half, max(half, across - half)))


def _pen(rng: np.random.Generator) -> tuple[int, ...]:
    return _PENS[int(rng.integers(len(_PENS)))]


@dataclass(frozen=True)
class _Spot:
    """Where a digit written on the page goes: its box height, centre, tilt, and the paper."""

    height: int
    centre: tuple[int, int]
    tilt: float
    paper: np.ndarray


def render_scene(digit28: np.ndarray, kind: str, rng: np.random.Generator) -> bytes:
    """One MNIST digit photographed in a scene: JPEG bytes."""
    if kind not in SCENES:
        raise ValueError(f"unknown scene {kind!r}; known: {', '.join(SCENES)}")
    hw = _photo_size(rng)
    aspect = digit28.shape[1] / digit28.shape[0]  # 1 for a digit; a string of digits is wider
    if aspect > 1.5 and hw[0] > hw[1]:
        hw = (hw[1], hw[0])  # a number is photographed in landscape
    if kind in ("scene_table", "scene_keystone"):
        return _sheet_in_view(digit28, kind, hw, rng)
    side = min(hw)
    height = _fit(int(side * rng.uniform(0.2, 0.45)), hw[1], aspect)
    centre = (int(hw[0] * rng.uniform(0.4, 0.6)), _within(int(hw[1] * rng.uniform(0.4, 0.6)), hw[1], height, aspect))
    tilt = float(rng.uniform(-6, 6))
    spot = _Spot(height, centre, tilt, _paper(hw, rng))
    return _ON_THE_PAGE[kind](digit28, kind, hw, spot, rng)


def _sheet_in_view(digit28: np.ndarray, kind: str, hw: tuple[int, int], rng: np.random.Generator) -> bytes:
    """A sheet on a table, turned or photographed at an angle, the table around it."""
    side = min(hw)
    sh = int(side * rng.uniform(0.7, 1.3))
    sheet_hw = (sh, int(sh * rng.uniform(0.7, 0.8)))
    aspect = digit28.shape[1] / digit28.shape[0]
    height = _fit(int(min(sheet_hw) * rng.uniform(0.18, 0.4)), sheet_hw[1], aspect)  # the digit's box on the sheet
    spot = (int(sheet_hw[0] * rng.uniform(0.3, 0.7)), int(sheet_hw[1] * rng.uniform(0.3, 0.7)))
    spot = (spot[0], _within(spot[1], sheet_hw[1], height, aspect))
    sheet = _paper(sheet_hw, rng)
    tilt = float(rng.uniform(-12, 12))
    sheet = _paint(sheet, _digit_ink(digit28, sheet_hw, height, spot, tilt * 0.3), _pen(rng))
    if kind == "scene_table":
        angle, keystone = float(rng.uniform(-35, 35)), 0.0
    else:
        angle, keystone = float(rng.uniform(-10, 10)), float(rng.uniform(0.15, 0.4))
    where = (float(rng.uniform(0.35, 0.65)), float(rng.uniform(0.35, 0.65)))
    img = _place_sheet(sheet, spot, hw, rng, angle, where, keystone)
    return _finish(img, rng, float(rng.uniform(0.05, 0.3)), float(rng.uniform(2, 5)))


def _shadowed(digit28: np.ndarray, kind: str, hw: tuple[int, int], spot: _Spot, rng: np.random.Generator) -> bytes:
    """A digit on paper with a hand's or phone's shadow across it, hard-edged or soft."""
    height, centre, tilt, paper = spot.height, spot.centre, spot.tilt, spot.paper
    side = min(hw)
    img = _paint(paper, _digit_ink(digit28, hw, height, centre, tilt), _pen(rng))
    blur = float(rng.uniform(0.6, 2.5)) if kind == "scene_shadow_hard" else float(rng.uniform(0.04, 0.15)) * side
    depth = float(rng.uniform(0.35, 0.65))  # the shadow keeps this share of the light
    cast = 1.0 - (1.0 - depth) * _shadow(hw, rng, blur)
    img = img * cast[..., None] * np.asarray([0.97, 0.99, 1.03], np.float32)
    return _finish(img, rng, float(rng.uniform(0.0, 0.2)), float(rng.uniform(2, 5)))


def _lined_paper(digit28: np.ndarray, kind: str, hw: tuple[int, int], spot: _Spot, rng: np.random.Generator) -> bytes:
    """A digit on ruled (with a margin line) or squared paper, the page turned a little."""
    height, centre, tilt, paper = spot.height, spot.centre, spot.tilt, spot.paper
    side = min(hw)
    rule = (float(rng.uniform(120, 190)), float(rng.uniform(150, 205)), float(rng.uniform(195, 235)))
    spacing = height * float(rng.uniform(0.35, 0.7) if kind == "scene_ruled" else rng.uniform(0.2, 0.45))
    width = float(rng.uniform(1.0, 2.5)) * side / 700
    cover = _lines(hw, spacing, width, float(rng.uniform(0, spacing)))
    if kind == "scene_squared":
        cover = np.maximum(cover, _lines(hw, spacing, width, float(rng.uniform(0, spacing)), vertical=True))
    img = _paint(paper, cover, rule)
    if kind == "scene_ruled":
        margin = float(rng.uniform(0.05, 0.3)) * hw[1]
        img = _paint(img, _lines(hw, 10 * hw[1], width * 1.3, margin, vertical=True), (215, 90, 95))
    img = _paint(img, _digit_ink(digit28, hw, height, centre, tilt), _pen(rng))
    turned = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).rotate(
        float(rng.uniform(-7, 7)), resample=Image.Resampling.BICUBIC, center=(centre[1], centre[0]),
        fillcolor=tuple(int(v) for v in paper[0, 0]))  # fmt: skip
    return _finish(np.asarray(turned, np.float32), rng, float(rng.uniform(0.05, 0.3)), float(rng.uniform(2, 5)))


def _in_boxes(digit28: np.ndarray, kind: str, hw: tuple[int, int], spot: _Spot, rng: np.random.Generator) -> bytes:
    """A digit in a printed form box, alone with its caption or in a row of boxes."""
    height, tilt = spot.height, spot.tilt
    side = min(hw)
    bh = height * float(rng.uniform(1.2, 1.6))
    bw = height * float(rng.uniform(0.95, 1.5))
    wall = max(1.0, float(rng.uniform(1.0, 4.0)) * side / 700)
    ink_rgb = (float(rng.uniform(10, 80)),) * 3
    if kind == "scene_form_box":
        return _form_box(digit28, hw, spot, (bh, bw, wall), ink_rgb, rng)
    # a row of boxes sharing walls, cropped to one box and slices of its neighbours
    show = float(rng.uniform(0.05, 0.35))  # of a neighbour's width in view on each side
    pw = int(bw * (1 + 2 * show))
    ph = int(bh * float(rng.uniform(1.05, 1.4)))
    row_hw = (ph, pw)
    top, left = (ph - bh) / 2, bw * show
    cover = np.zeros(row_hw, np.float32)
    for k in (-1, 0, 1):
        cover = np.maximum(
            cover, _rect(row_hw, top, left + k * (bw - wall), top + bh, left + (k + 1) * bw - k * wall, wall)
        )
    img = _paint(_paper(row_hw, rng), cover, ink_rgb)
    pen = _pen(rng)
    mid = (int(ph / 2), int(left + bw / 2))
    img = _paint(img, _digit_ink(digit28, row_hw, height, mid, tilt), pen)
    twin = np.ascontiguousarray(digit28[:, ::-1].T)  # a neighbour's digit: some other strokes
    for k in (-1, 1):
        if rng.random() < 0.8:
            nb = (mid[0] + int(rng.uniform(-0.05, 0.05) * bh), int(mid[1] + k * bw))
            img = _paint(img, _digit_ink(twin if k < 0 else digit28[::-1], row_hw, height, nb, tilt), pen)
    return _finish(img, rng, float(rng.uniform(0.05, 0.25)), float(rng.uniform(2, 5)))


def _form_box(
    digit28: np.ndarray,
    hw: tuple[int, int],
    spot: _Spot,
    box: tuple[float, float, float],
    ink_rgb: tuple[float, ...],
    rng: np.random.Generator,
) -> bytes:
    """One form box (its caption above it, sometimes), the digit written a little off its centre."""
    height, centre, tilt, paper = spot.height, spot.centre, spot.tilt, spot.paper
    bh, bw, wall = box
    top, left = centre[0] - bh / 2, centre[1] - bw / 2
    cover = _rect(hw, top, left, top + bh, left + bw, wall)
    if rng.random() < 0.6:  # the form's caption above the box
        word = _LABELS[int(rng.integers(len(_LABELS)))]
        cover = np.maximum(cover, _text(hw, word, int(bh * 0.22), (int(top - bh * 0.35), int(left))))
    img = _paint(paper, cover, ink_rgb)
    jitter = (int(rng.uniform(-0.08, 0.08) * bh), int(rng.uniform(-0.08, 0.08) * bw))
    ink = _digit_ink(digit28, hw, height, (centre[0] + jitter[0], centre[1] + jitter[1]), tilt)
    return _finish(_paint(img, ink, _pen(rng)), rng, float(rng.uniform(0.05, 0.3)), float(rng.uniform(2, 5)))


def _whiteboard(digit28: np.ndarray, kind: str, hw: tuple[int, int], spot: _Spot, rng: np.random.Generator) -> bytes:
    """A marker digit on a whiteboard: erased ghosts, glare, the frame along an edge."""
    height, centre, tilt = spot.height, spot.centre, spot.tilt
    side = min(hw)
    board = _paper(hw, rng, float(rng.uniform(215, 245))) * np.asarray([0.98, 0.99, 1.0], np.float32)
    ghost = _digit_ink(np.ascontiguousarray(digit28[::-1, ::-1]), hw, int(height * 1.3),
                       (int(hw[0] * rng.uniform(0.2, 0.8)), int(hw[1] * rng.uniform(0.2, 0.8))), 30.0)  # fmt: skip
    smeared = Image.fromarray((ghost * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(side / 60))
    ghost = np.asarray(smeared, np.float32) / 255.0
    img = _paint(board, ghost * rng.uniform(0.05, 0.15), (120, 120, 130))  # erased writing
    ink = _digit_ink(digit28, hw, height, centre, tilt, width=int(height * rng.uniform(0.04, 0.09)))
    img = _paint(img, ink, _MARKERS[int(rng.integers(len(_MARKERS)))])
    r = float(rng.uniform(0.1, 0.3)) * side  # glare: the board's sheen blown out
    gy, gx = rng.uniform(0.2, 0.8) * hw[0], rng.uniform(0.2, 0.8) * hw[1]
    yy, xx = np.mgrid[0 : hw[0], 0 : hw[1]].astype(np.float32)
    glare = np.exp(-(((yy - gy) ** 2) / (r * r * rng.uniform(0.3, 1.0)) + ((xx - gx) ** 2) / (r * r)))
    img = img + glare[..., None] * float(rng.uniform(60, 160))
    for edge in range(int(rng.integers(0, 3))):  # the aluminium frame along one or two sides
        band = int(side * rng.uniform(0.02, 0.06))
        frame = np.zeros(hw, np.float32)
        if edge == 0:
            frame[:band] = 1.0
        else:
            frame[:, :band] = 1.0
        frame = (
            np.rot90(frame, 2 * int(rng.integers(2)))
            if hw[0] == hw[1]
            else frame[::-1]
            if rng.random() < 0.5
            else frame
        )
        img = _paint(img, frame, (float(rng.uniform(110, 170)),) * 3)
    return _finish(img, rng, float(rng.uniform(0.1, 0.35)), float(rng.uniform(2, 5)))


def _labelled(digit28: np.ndarray, kind: str, hw: tuple[int, int], spot: _Spot, rng: np.random.Generator) -> bytes:
    """A digit beside (or under) a short printed label."""
    height, centre, tilt, paper = spot.height, spot.centre, spot.tilt, spot.paper
    img = _paint(paper, _digit_ink(digit28, hw, height, centre, tilt), _pen(rng))
    word = _LABELS[int(rng.integers(len(_LABELS)))]
    px = int(height * rng.uniform(0.25, 0.45))
    size = _font(px).getbbox(word)
    gap = height * rng.uniform(0.15, 0.6)
    if rng.random() < 0.7:  # to the left, on the digit's line
        at = (
            int(centre[0] + height * rng.uniform(-0.1, 0.3) - size[3] / 2),
            int(centre[1] - height * 0.4 * digit28.shape[1] / digit28.shape[0] - gap - size[2]),  # a string is wider
        )
    else:  # above it
        at = (int(centre[0] - height / 2 - gap - size[3]), int(centre[1] - size[2] / 2))
    img = _paint(img, _text(hw, word, px, at), (20, 20, 20))
    return _finish(img, rng, float(rng.uniform(0.05, 0.3)), float(rng.uniform(2, 5)))


_ON_THE_PAGE = {
    "scene_shadow_hard": _shadowed,
    "scene_shadow_soft": _shadowed,
    "scene_ruled": _lined_paper,
    "scene_squared": _lined_paper,
    "scene_form_box": _in_boxes,
    "scene_box_row": _in_boxes,
    "scene_whiteboard": _whiteboard,
    "scene_label": _labelled,
}
