"""A handwritten number in one upload -> its digits, left to right, each framed as one digit is.

The photo becomes ink as for one digit (contract/photo.py: polarity, light, and the scene stage of
contract/scene.py when the photo shows more than the writing), then:

1. the ink's pieces (connected components); specks, and pieces much smaller than the line's
   digits (a dot or a comma between groups, small print) are left out;
2. the line's slant: the shear that makes the column-ink profile peakiest; the rest works in
   sheared columns, so that slanted digits stand side by side;
3. printed box walls (thin, straight, upright, taller than the writing) are taken out, and when
   they make a row of boxes, each box's pieces are one digit;
4. pieces that overlap in (sheared) x are one digit; a small piece joins its nearest neighbour;
5. a group wider than a digit may be digits that touch or cross: cuts along the least-ink paths
   near the low points of its column-ink profile are tried, every segment between two cuts is
   framed (as cut, and widened into its neighbours) and classified (one batch), and the path
   of segments the classifier and its digit detector are surest of wins (dynamic programming
   over -log p - log digit_score, with a cost per digit and for a segment too wide for one);
6. each digit is framed by contract.framing exactly as /predict frames one digit; an upload
   with one part is framed exactly as /predict frames it, so it reads the same.

The classifier is the caller's: a callable from (N, 28, 28) float32 frames to (probabilities
(N, 10), digit_score (N,)), and the threshold under which a frame is not a digit. numpy and
OpenCV; no onnxruntime here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from contract import photo, scene
from contract.framing import INK_THRESHOLD, NoInk, frame, ink_mask, peak

Classify = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]  # (N, 28, 28) -> (N, 10), (N,)

MAX_DIGITS = 12  # parts per upload: past it, TooManyDigits (a 4xx), before any inference
MASK_LEVEL = INK_THRESHOLD  # of the ink's peak: what counts as a piece's ink (framing crops at INK_THRESHOLD)
SPECK = 0.03  # of the biggest piece's area: smaller pieces are noise
FAINT_ONE = 0.3  # of the line: a group this tall across the mid-line is a digit
LOW_MARK = 0.7  # of the line: a group below the mid-line shorter than this is a mark
SMALL = 0.45  # of the line's height: a group shorter than this is punctuation or small print
OVERLAP = 0.4  # of the narrower piece's width: pieces overlapping this much in x are one digit
NEAR = 0.25  # of the line's height: a small piece this close to a digit is part of it
JOIN_SMALL = 0.6  # of the line's height: a piece shorter than this may join a neighbour
SLANTS = np.linspace(-0.6, 0.6, 13)  # shears tried: tan of -31 to 31 degrees
SLANT_GAIN = 1.5  # a shear must make the profile this much peakier than upright (touching digits fool it)
WIDE = 0.9  # of the line's height: a group wider than this may be several digits
MIN_PART, MAX_PART = 0.2, 1.1  # of the line's height: a cut segment's width must lie within
CUTS = 7  # at most this many cut positions per group (the lowest points of its profile)
SHARE = 0.1  # of the line's height: a cut segment is also tried widened this much each side
PATH_REACH = 0.2  # of the line's height: how far a cut's path may wander from the straight cut
PATH_STRAY = 0.1  # ink's worth of cost for wandering the whole reach
ONE_WIDTH = 1.3  # of the line's height: a segment wider than this is hardly one digit
WIDTH_COST = 4.0  # -log p added per line height a segment is wider than ONE_WIDTH
SPLIT_COST = 0.7  # added per digit: a split must be clearly surer than reading one
SCORE_FULL = 0.5  # digit_score at or above this costs nothing; below, it counts as a probability
SCORE_WEIGHT = 1.0
ONE_SURE = 0.95  # a lone group read whole this surely is one digit, however wide
WALL_THIN = 0.12  # of its height: a box wall's width (a written 1 is wider or leans)
WALL_TALL = 1.12  # of the writing's median height: a box wall is taller


class TooManyDigits(ValueError):
    """The upload holds more parts than one number may have: the caller's error (a 4xx)."""


@dataclass(frozen=True)
class Digit:
    """One part of the number: its reading, how sure, whether it is a digit at all, and where."""

    digit: int
    confidence: float  # the classifier's probability of `digit`
    is_digit: bool  # digit_score at or above the threshold: False for a letter, a symbol
    box: tuple[int, int, int, int]  # (x, y, w, h) in the upload's pixels


@dataclass(frozen=True)
class Number:
    """The number read: its digits left to right ('?' for a part that is not a digit), the
    product of the parts' confidences (the chance that every digit is right, if each is
    calibrated: it falls with the weakest digit and with the number's length), and the parts."""

    number: str
    confidence: float
    digits: tuple[Digit, ...]


def read_number(img: photo.Image_, classify: Classify, threshold: float, max_digits: int = MAX_DIGITS) -> Number:
    """The number in an upload (a PIL image, or decode's uint8 array as photo.to_frame takes).

    NoInk when it shows no ink; TooManyDigits past `max_digits` parts."""
    small = photo._small(img)
    rgb = photo._as_float(small)  # (h, w, C) float32 in [0, 1], h, w <= 384
    scale = _scale(img, rgb.shape[:2])
    if rgb.shape[:2] == (28, 28):
        ready = photo.already_mnist(rgb)
        if ready is not None:
            return _answer([ready], [(0, 0, 28, 28)], classify, threshold, scale)
    ink, turn = _writing(rgb)  # (h, w): the scene stage's ink, every digit of the row kept
    groups = _segment(ink, max_digits)
    if len(groups) <= 1 and not any(_wide(g) for g in groups):  # one part: framed as /predict frames it
        one = photo.digit_ink(rgb)
        return _answer([frame(one)], [_box_of(one)], classify, threshold, scale)
    if len(groups) > max_digits:  # each group is a digit at least: refused before any framing
        raise TooManyDigits(
            f"the image holds {len(groups)} digits or more, more than the {max_digits} one number may have"
        )
    frames, boxes, choices = _candidates(groups)
    if len(frames) == 0:
        raise NoInk("no ink to frame")
    probs, scores = classify(np.stack(frames))  # (M, 10), (M,): one batch for every candidate
    picked = _best_paths(choices, probs, scores)
    if len(groups) == 1 and len(picked) > 1 and _sure_whole(choices[0], picked, probs, scores, threshold):
        picked = picked[:1]  # one group the classifier reads whole with assurance: one digit, read as /predict reads it
    if len(picked) > max_digits:
        raise TooManyDigits(f"the image holds {len(picked)} digits, more than the {max_digits} one number may have")
    if len(picked) == 1:  # one digit after all: framed as /predict frames the upload
        one = photo.digit_ink(rgb)
        return _answer([frame(one)], [_box_of(one)], classify, threshold, scale)
    chosen = [_unturn(boxes[i], turn, ink.shape) for i in picked]
    return _result([probs[i] for i in picked], [scores[i] for i in picked], chosen, threshold, scale)


def _writing(rgb: np.ndarray) -> tuple[np.ndarray, float]:
    """(h, w, C) float pixels -> (h, w) ink of the writing, and the degrees it was turned by (a
    turned sheet turned square): photo.digit_ink's ink map and scene stage, the stage keeping
    the whole row of digits (scene.find_writing), not one."""
    dark = photo.is_dark_ink(rgb)
    ink = photo.ink_map(rgb, dark)
    sheet = not dark and scene.bright_surface(rgb.mean(-1))
    if not sheet and (not dark or scene.looks_plain(ink)):
        return ink, 0.0
    channels = [rgb[..., c] for c in range(rgb.shape[-1])]  # dark ink (a sheet's), as photo has it
    found = scene.find_writing(np.minimum.reduce(channels))
    return (ink, 0.0) if found is None else (found.ink, found.turn)


def _unturn(box: tuple[int, int, int, int], turn: float, hw: tuple[int, ...]) -> tuple[int, int, int, int]:
    """A box found in the ink turned by `turn` degrees about the picture's centre, as the box
    around the same corners in the picture as it came."""
    if not turn:
        return box
    h, w = hw[:2]
    back = cv2.invertAffineTransform(cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), turn, 1.0))  # (2, 3)
    x, y, bw, bh = box
    corners = np.array([[x, y, 1], [x + bw, y, 1], [x, y + bh, 1], [x + bw, y + bh, 1]], np.float64)  # (4, 3)
    xs, ys = (corners @ back.T).T  # (4,) each
    x0, y0 = max(0, int(np.floor(xs.min()))), max(0, int(np.floor(ys.min())))
    return x0, y0, min(w, int(np.ceil(xs.max()))) - x0, min(h, int(np.ceil(ys.max()))) - y0


def _wide(g: _Group) -> bool:
    """Wider than one digit: maybe digits that touch."""
    return g.splittable and float(g.sx[g.mask].max() - g.sx[g.mask].min()) + 1.0 > WIDE * g.line


def _scale(img: photo.Image_, hw: tuple[int, int]) -> tuple[float, float]:
    """Upload px per working px, (x, y)."""
    h, w = img.shape[:2] if isinstance(img, np.ndarray) else (img.size[1], img.size[0])
    return w / hw[1], h / hw[0]


def _box_of(ink: np.ndarray) -> tuple[int, int, int, int]:
    """The box framing crops to: ink above its threshold, noise pixels left out."""
    mask = ink_mask(ink, INK_THRESHOLD * peak(ink))
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if rows.size == 0:
        raise NoInk("no ink to frame")
    return int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)


def _answer(
    frames: list[np.ndarray], boxes: list[tuple[int, int, int, int]], classify: Classify, threshold: float,
    scale: tuple[float, float],
) -> Number:  # fmt: skip
    probs, scores = classify(np.stack(frames))
    return _result(list(probs), list(scores), boxes, threshold, scale)


def _result(
    probs: list[np.ndarray], scores: list[float], boxes: list[tuple[int, int, int, int]], threshold: float,
    scale: tuple[float, float],
) -> Number:  # fmt: skip
    digits = []
    for p, s, (x, y, w, h) in zip(probs, scores, boxes, strict=True):
        d = int(np.argmax(p))
        up = (round(x * scale[0]), round(y * scale[1]), round(w * scale[0]), round(h * scale[1]))
        digits.append(Digit(d, float(p[d]), bool(s >= threshold), up))
    number = "".join(str(d.digit) if d.is_digit else "?" for d in digits)
    return Number(number, float(np.prod([d.confidence for d in digits])), tuple(digits))


# --- segmentation: ink -> groups of pieces, each a candidate digit or a run of touching ones ---


@dataclass
class _Group:
    """Pieces that make one digit, or several that touch: a mask over the crop of the ink."""

    ink: np.ndarray  # (h, w) float32, the ink of these pieces only, cropped to `origin`'s box
    mask: np.ndarray  # (h, w) bool, the pieces
    sx: np.ndarray  # (h, w) float32, each pixel's sheared column
    origin: tuple[int, int]  # (x, y) of the crop in the working image
    line: float  # the line's height, px
    splittable: bool  # False for a box of a row: one digit, whatever its width
    slant: float = 0.0  # the shear of `sx`: x per px up


def _segment(ink: np.ndarray, max_digits: int) -> list[_Group]:
    """The ink's groups, left to right; TooManyDigits when there are far too many to read."""
    mask = ink_mask(ink, MASK_LEVEL * peak(ink)).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n <= 2:
        return [] if n <= 1 else [_group(ink, labels, [1], 0.0, float(stats[1, 3]), True)]
    stats = stats[1:].astype(np.float64)  # (k, 5): x, y, w, h, area
    keep = stats[:, 4] >= SPECK * stats[:, 4].max()
    ids = np.flatnonzero(keep) + 1
    stats = stats[keep]
    if len(ids) > 4 * max_digits:
        raise TooManyDigits(f"the image holds {len(ids)} pieces of ink, more than {max_digits} digits would make")
    walls = _walls(stats)
    remap = np.zeros(n, np.int64)
    remap[ids] = np.arange(1, len(ids) + 1)
    lab = remap[labels]  # (H, W): 0 paper, k + 1 the k-th kept piece
    ys, xs = np.nonzero(lab)
    which = lab[ys, xs] - 1
    t = _slant(ys[~walls[which]], xs[~walls[which]])
    mid = float(np.median(ys))
    sx = xs - t * (ys - mid)  # each pixel's sheared column
    x0 = np.full(len(ids), np.inf)
    x1 = np.full(len(ids), -np.inf)
    np.minimum.at(x0, which, sx)
    np.maximum.at(x1, which, sx + 1.0)
    line = _line(stats, x0, x1, walls)
    boxes = _boxes(stats, walls)
    sets = _by_box(stats, walls, boxes) if boxes is not None else _join(stats, x0, x1, line, walls)
    tops = np.array([stats[m, 1].min() for m in sets])
    heights = np.array([(stats[m, 1] + stats[m, 3]).max() for m in sets]) - tops
    tall = heights >= SMALL * line
    middle = float(np.median(tops[tall] + heights[tall] / 2)) if tall.any() else 0.0  # the row's mid-line
    groups = []
    for members, top, height in zip(sets, tops, heights, strict=True):
        if _punctuation(top, height, line, middle if tall.any() else None):
            continue  # a dot, a comma, small print: not a digit of the number
        groups.append((float(x0[members].min()), members))
    groups.sort(key=lambda g: g[0])
    return [_group(ink, lab, list(m + 1), t, line, boxes is None) for _, m in groups]


def _punctuation(top: float, height: float, line: float, middle: float | None) -> bool:
    """A group that is no digit of the row: shorter than SMALL of the line, unless it reaches
    above the row's mid-line and is at least FAINT_ONE of the line tall (a faint 1 whose ends
    fell under the ink's threshold); or wholly below the mid-line and shorter than LOW_MARK of
    the line (a comma with its tail, which reads as a 1)."""
    if middle is None:
        return height < SMALL * line
    if top >= middle:
        return height < LOW_MARK * line
    return height < (FAINT_ONE if top + height > middle else SMALL) * line


def _line(stats: np.ndarray, x0: np.ndarray, x1: np.ndarray, walls: np.ndarray) -> float:
    """The writing's height: the median height of what overlaps in x (a digit broken across
    its middle counts whole), among the sizable ones."""
    if walls.all():
        return float(stats[:, 3].max())
    sets = _overlapping(x0, x1, walls)
    tops = np.array([stats[m, 1].min() for m in sets])
    heights = np.array([(stats[m, 1] + stats[m, 3]).max() for m in sets]) - tops
    areas = np.array([stats[m, 4].sum() for m in sets])
    return float(np.median(heights[areas >= 0.2 * areas.max()]))


def _walls(stats: np.ndarray) -> np.ndarray:
    """(k,) bool: pieces that are a printed box's upright wall: thin, straight, taller than
    the writing around them."""
    thin = (stats[:, 2] <= WALL_THIN * stats[:, 3]) & (stats[:, 3] >= 12)
    if not thin.any() or thin.all():
        return np.zeros(len(stats), bool)
    others = float(np.median(stats[~thin, 3]))
    walls = thin & (stats[:, 3] >= WALL_TALL * others)
    return walls if walls.sum() >= 2 else np.zeros(len(stats), bool)  # one alone is a written 1


def _boxes(stats: np.ndarray, walls: np.ndarray) -> np.ndarray | None:
    """The walls' x centres, sorted, when they make a row (at least two)."""
    if walls.sum() < 2:
        return None
    xs = np.sort(stats[walls, 0] + stats[walls, 2] / 2)
    return xs if len(xs) >= 2 else None


def _by_box(stats: np.ndarray, walls: np.ndarray, edges: np.ndarray) -> list[np.ndarray]:
    """The pieces of each box of a row, by where their centre lies between the walls."""
    centre = stats[:, 0] + stats[:, 2] / 2
    slot = np.searchsorted(edges, centre)
    out = []
    for s in np.unique(slot[~walls]):
        members = np.flatnonzero((slot == s) & ~walls)
        if 0 < s < len(edges) or stats[members, 4].sum() >= 0.3 * stats[~walls, 4].max():
            out.append(members)
    return out


def _slant(ys: np.ndarray, xs: np.ndarray) -> float:
    """The shear (x per px up) that makes the column-ink profile of the writing peakiest; 0
    unless another is clearly peakier."""
    if ys.size < 20:
        return 0.0
    if ys.size > 4000:  # a sample is enough to see the slant
        pick = np.linspace(0, ys.size - 1, 4000).astype(int)
        ys, xs = ys[pick], xs[pick]
    mid = float(np.median(ys))
    scores = []
    for t in SLANTS:
        cols = np.round(xs - t * (ys - mid)).astype(np.int64)
        counts = np.bincount(cols - cols.min())
        scores.append(float(np.dot(counts, counts)))
    best = int(np.argmax(scores))
    upright = scores[len(SLANTS) // 2]
    return float(SLANTS[best]) if scores[best] > SLANT_GAIN * upright else 0.0


def _roots(parent: list[int], i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def _overlapping(
    x0: np.ndarray, x1: np.ndarray, walls: np.ndarray, parent: list[int] | None = None
) -> list[np.ndarray]:
    """Pieces (not walls) joined when they overlap in sheared x by OVERLAP of the narrower."""
    k = len(x0)
    parent = list(range(k)) if parent is None else parent
    width = x1 - x0
    for i in range(k):
        for j in range(i + 1, k):
            if walls[i] or walls[j]:
                continue
            if min(x1[i], x1[j]) - max(x0[i], x0[j]) >= OVERLAP * min(width[i], width[j]):
                parent[_roots(parent, i)] = _roots(parent, j)
    sets: dict[int, list[int]] = {}
    for i in range(k):
        if not walls[i]:
            sets.setdefault(_roots(parent, i), []).append(i)
    return [np.asarray(v) for v in sets.values()]


def _join(stats: np.ndarray, x0: np.ndarray, x1: np.ndarray, line: float, walls: np.ndarray) -> list[np.ndarray]:
    """Pieces into digits: those that overlap in sheared x, and small ones near a neighbour."""
    k = len(stats)
    parent = list(range(k))
    _overlapping(x0, x1, walls, parent)
    for i in np.argsort(stats[:, 4]):  # small pieces, smallest first, to their nearest neighbour
        if walls[i] or stats[i, 3] >= JOIN_SMALL * line:
            continue
        gap_x = np.maximum(np.maximum(x0 - x1[i], x0[i] - x1), 0.0)
        below, above = stats[:, 1] - stats[i, 1] - stats[i, 3], stats[i, 1] - stats[:, 1] - stats[:, 3]
        gap = np.hypot(gap_x, np.maximum(np.maximum(below, above), 0.0))
        mine = _roots(parent, i)
        gap[[walls[j] or _roots(parent, j) == mine for j in range(k)]] = np.inf
        j = int(np.argmin(gap))
        if gap[j] <= NEAR * line:
            parent[mine] = _roots(parent, j)
    return _overlapping(x0, x1, walls, parent)


def _group(ink: np.ndarray, labels: np.ndarray, ids: list[int], t: float, line: float, splittable: bool) -> _Group:
    """The group's crop: its pieces' mask, their ink (soft edges kept), sheared columns."""
    mask = np.isin(labels, ids)
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    y0, y1 = max(0, rows[0] - 1), min(ink.shape[0], rows[-1] + 2)
    x0, x1 = max(0, cols[0] - 1), min(ink.shape[1], cols[-1] + 2)
    m = mask[y0:y1, x0:x1]
    near = cv2.dilate(m.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0  # soft edges of its strokes
    crop = ink[y0:y1, x0:x1] * near
    yy, xx = np.mgrid[0 : y1 - y0, 0 : x1 - x0].astype(np.float32)
    sx = xx - t * (yy - (y1 - y0) / 2)
    return _Group(crop.astype(np.float32), near, sx, (int(x0), int(y0)), line, splittable, t)


# --- choosing the cuts: every segment framed, one batch, the surest path ---


@dataclass
class _Choice:
    """A group's candidate segments (indices into the batch) and their spans in cut positions."""

    spans: list[tuple[int, int, int, float]]  # (from cut, to cut, batch index, width in lines)
    cuts: int  # number of cut positions, ends included


def _candidates(groups: list[_Group]) -> tuple[list[np.ndarray], list[tuple[int, int, int, int]], list[_Choice]]:
    """Every candidate segment of every group framed: frames, boxes, and each group's choices."""
    frames: list[np.ndarray] = []
    boxes: list[tuple[int, int, int, int]] = []
    choices = []
    for g in groups:
        cuts = _cut_positions(g)
        h, w = g.ink.shape
        bounds = [np.full(h, -1), *(_path(g, c) for c in cuts[1:-1]), np.full(h, w + 1)]  # (h,) x per row
        columns = np.arange(w)[None, :]
        spans = []
        for a in range(len(cuts) - 1):
            for b in range(a + 1, len(cuts)):
                width = (cuts[b] - cuts[a]) / g.line
                whole = a == 0 and b == len(cuts) - 1
                if not whole and not MIN_PART <= width <= MAX_PART:
                    continue
                # the cut, and (between touching digits) the cut widened into the neighbours by
                # SHARE of a line: crossing strokes belong to both digits
                for grow in (0, 0) if whole else (0, round(SHARE * g.line)):
                    left = bounds[a] - (grow if a > 0 else 0)
                    right = bounds[b] + (grow if b < len(cuts) - 1 else 0)
                    piece = g.ink * ((columns >= left[:, None]) & (columns < right[:, None]))
                    try:
                        frames.append(frame(piece))
                    except NoInk:
                        continue
                    box = _box_of(piece)
                    boxes.append((box[0] + g.origin[0], box[1] + g.origin[1], box[2], box[3]))
                    spans.append((a, b, len(frames) - 1, width))
                    if not grow and (whole or SHARE <= 0):
                        break
        choices.append(_Choice(spans, len(cuts)))
    return frames, boxes, choices


def _cut_positions(g: _Group) -> list[float]:
    """Sheared columns where the group may be cut: its ends, and, when it is wider than a
    digit, the lowest points of its column-ink profile, at least a fifth of a line apart."""
    lo, hi = float(g.sx[g.mask].min()), float(g.sx[g.mask].max()) + 1.0
    if not _wide(g):
        return [lo, hi]
    start = int(np.floor(lo))
    ink = np.bincount((np.floor(g.sx[g.mask]) - start).astype(np.int64), weights=g.ink[g.mask])
    profile = np.convolve(ink, np.ones(3) / 3, mode="same")  # (columns,) ink per sheared column
    inner = np.arange(len(profile))
    margin = MIN_PART * g.line
    ok = (inner >= margin) & (inner <= len(profile) - margin)
    order = [int(i) for i in np.argsort(profile, kind="stable") if ok[i]]
    picked: list[int] = []
    for i in order:
        if all(abs(i - p) >= 0.2 * g.line for p in picked):
            picked.append(i)
        if len(picked) >= CUTS:
            break
    return [lo, *sorted(float(start + p) for p in picked), hi]


def _path(g: _Group, cut: float) -> np.ndarray:
    """The cut through sheared column `cut` that crosses the least ink: a path from the top row
    to the bottom, one column at most per row, within PATH_REACH of a line of the straight
    cut along the slant (where two digits touch, it finds the thin joint). (h,) x per row."""
    h, w = g.ink.shape
    reach = max(2, round(PATH_REACH * g.line))
    offsets = np.arange(-reach, reach + 1)  # (k,)
    k = len(offsets)
    centres = np.round(cut + g.slant * (np.arange(h) - h / 2)).astype(np.int64)  # (h,)
    xs = centres[:, None] + offsets[None, :]  # (h, k)
    here = np.where((xs >= 0) & (xs < w), g.ink[np.arange(h)[:, None], np.clip(xs, 0, w - 1)], 0.0)  # (h, k)
    here += PATH_STRAY * np.abs(offsets)[None, :] / reach  # a little cost to stray from the straight cut
    total = here[0].copy()
    back = np.zeros((h, k), np.int64)
    index = np.arange(k)
    for y in range(1, h):
        shift = int(centres[y] - centres[y - 1])
        best = np.full(k, np.inf)
        for move in (-1, 0, 1):  # from x' = x - move: the earlier row's state index + shift + move... kept in range
            before = index + shift - move
            ok = (before >= 0) & (before < k)
            cand = np.full(k, np.inf)
            cand[ok] = total[before[ok]]
            better = cand < best
            best[better] = cand[better]
            back[y, better] = before[better]
        total = best + here[y]
    path = np.zeros(h, np.int64)
    j = int(np.argmin(total))
    for y in range(h - 1, -1, -1):
        path[y] = xs[y, j]
        j = int(back[y, j])
    return path


def _sure_whole(c: _Choice, picked: list[int], probs: np.ndarray, scores: np.ndarray, threshold: float) -> bool:
    """Whether the group's whole candidate (from the first cut to the last) reads as one digit
    with at least ONE_SURE probability, its detector saying it is a digit, and at least as
    surely as the split reads all its parts (the product of their probabilities)."""
    whole = [i for a, b, i, _ in c.spans if a == 0 and b == c.cuts - 1]
    if not whole or float(scores[whole[0]]) < threshold:
        return False
    p = float(probs[whole[0]].max())
    return p >= ONE_SURE and p >= float(np.prod(probs[picked].max(1)))


def _best_paths(choices: list[_Choice], probs: np.ndarray, scores: np.ndarray) -> list[int]:
    """For each group, the segments from its left end to its right end that cost least: -log of
    each segment's probability, plus a cost for a segment too wide for a digit and per extra
    digit; the chosen batch indices, left to right."""
    picked: list[int] = []
    top = probs.max(1)
    for c in choices:
        best = [np.inf] * c.cuts
        back: list[tuple[int, int] | None] = [None] * c.cuts
        best[0] = 0.0
        for a, b, index, width in sorted(c.spans):
            if not np.isfinite(best[a]):
                continue
            sure = max(float(top[index]), 1e-9) * min(1.0, max(float(scores[index]), 1e-9) / SCORE_FULL) ** SCORE_WEIGHT
            cost = -float(np.log(sure)) + WIDTH_COST * max(0.0, width - ONE_WIDTH) + SPLIT_COST
            if best[a] + cost < best[b]:
                best[b], back[b] = best[a] + cost, (a, index)
        path = []
        at = c.cuts - 1
        while at > 0 and back[at] is not None:
            a, index = back[at]  # type: ignore[misc]
            path.append(index)
            at = a
        picked.extend(path[::-1])
    return picked
