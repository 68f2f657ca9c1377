"""The digit in a photo of a scene: the sheet on a table, a shadow, ruled paper, a form box.

Before framing (contract/photo.py), a photo whose ink is not one plain cluster goes through
this stage, built on OpenCV (docs/scenes.md says why and what it costs):

1. lighting: the paper without its ink is a morphological closing of the image (a dark
   feature narrower than the kernel is filled, a shadow's edge is kept where it is), and ink
   is how much darker a pixel is than that, as a ratio: a shadow or a lamp's fall-off divides
   out, a faint stroke keeps its contrast;
2. the writing surface: the largest bright region (Otsu on the blurred image), trusted only
   when the digit lies wholly inside it;
3. printed structure: long thin straight runs (ruled and squared lines, box walls, a margin
   line) found by opening with line-shaped kernels and taken out, then bridged again where a
   stroke crossed them;
4. the digit: connected components, scored by mass, contrast and nearness to the surface's
   centre; the best one grows by the pieces near it (a broken stroke is one digit); specks
   and pieces cut off by the picture's or the surface's edge are dropped.

Everything here works at photo.py's working size (at most 384 px on the long side).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from contract.framing import crop_mask, peak

cv2.setNumThreads(1)  # one upload, one core: the service frames uploads in several threads already

# Plain: what framing would crop is one cluster of ink, touching no edge, holding nothing.
PLAIN_MAX_PIECES = 3  # pieces of at least PIECE_SHARE of the ink
PIECE_SHARE = 0.02
SOLID = 0.7  # of the peak: the median ink of a digit's strokes (a shadow's is lower)

CLOSING_SHARE = (
    1 / 12
)  # the lighting's closing kernel, of the long side: wider than a stroke, narrower than a finger's shadow
STROKE_ROOM = 3.0  # the lighting's kernel is this many of the digit's strokes wide
STRONG = 0.7  # of the ink's robust peak: the darkest ink, where a pen's stroke is measured
SHADOW_ROOM = 1.5  # the narrow kernel that keeps a finger's shadow lighting is this many strokes wide
PEN = 0.75  # of the wide kernel's robust peak: ink this dark is a pen's, whatever the narrow kernel says
MIN_STROKE_PIXELS = 50  # of a mask on the writing surface: enough to measure its strokes there
INK_LEVEL = 0.55  # of the ink's robust peak: what counts as a stroke's pixel
INK_FLOOR = 0.12  # and never below this much darker than the paper
LINE_SHARE = 0.12  # a printed line runs at least this much of the long side
LINE_TILT = 3  # px a line may drift up or down along LINE_SHARE (about 8 degrees)
LINE_THICK = 2.5  # px: printed lines are at most this thick at the working size
SEED_CENTRE = 0.35  # nearness weight: a Gaussian of this many half-diagonals
JOIN_GAP = 0.12  # of the digit's size: pieces this close belong to it
SPECK = 0.03  # of the best piece's area: smaller pieces are dropped
NOISE = 0.005  # of the biggest piece's area: a far piece this small is noise, not a scene (the plain check)
NEIGHBOUR = 0.6  # of the digit's height: a piece this tall beside it, in its row, is another digit
RIVAL = 0.25  # of the best piece's area: a piece this big could have been the digit
MAX_RIVALS = 8  # more of them than this: a texture or a busy photo
CUT_SCORE = 0.01  # a piece the picture's edge cuts is chosen only when no other stands out
KIN = 0.75  # of the best piece's mean ink: fainter pieces (a shadow, a ghost) are not its strokes
MIN_TURN = 3.0  # degrees: a sheet turned less than this is left as it is
SURFACE_SHARE = 0.1  # a solid bright region this big is a writing surface: the ink is dark
SURFACE_GROUND = 20  # of 255: the least a photographed table reflects (a canvas is 0)
SURFACE_SOLIDITY = 0.8  # of its convex hull that a sheet fills (a turned, keystoned sheet: ~1)


@dataclass(frozen=True)
class Scene:
    """What the stage kept: the digit's ink and where it found things (working-size pixels)."""

    ink: np.ndarray  # (H, W) float32 >= 0, zero outside the chosen digit
    surface: np.ndarray | None  # (k, 2) int32 polygon (x, y) of the writing surface, or None
    box: tuple[int, int, int, int]  # the digit's (x, y, w, h)


def looks_plain(ink: np.ndarray, mask: np.ndarray | None = None, top_ink: float | None = None) -> bool:
    """Is what framing would crop already just the digit? (H, W) ink as photo.ink_map makes it;
    mask and top_ink: framing.crop_mask(ink) and framing.peak(ink) when the caller has them.
    plain_mask says which mask to frame with."""
    return plain_mask(ink, mask, top_ink) is not None


def plain_mask(ink: np.ndarray, mask: np.ndarray | None = None, top_ink: float | None = None) -> np.ndarray | None:
    """The (H, W) bool mask framing should crop to when the ink is already just the digit, or
    None when the scene stage has work to do. (H, W) ink as photo.ink_map makes it; mask and
    top_ink: framing.crop_mask(ink) and framing.peak(ink) when the caller has them (the caller
    hands the same to framing, so that the check costs little more than its labelling).

    Specks far from the biggest piece (each under NOISE of its area: a cluster of a sensor's
    noise, a fleck of dust) are left out of the mask, as the stage would leave them out. Then: every
    piece of ink near the biggest piece, none touching an edge of the picture (but a lone
    digit cropped at one edge), at most a few that matter, none inside another's box (a box's
    walls): the scene stage has nothing to add and is skipped.
    """
    if top_ink is None:
        top_ink = peak(ink)
    if mask is None:
        mask = crop_mask(ink, top_ink)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=8)
    if n <= 1:
        return mask
    stats = stats[1:]  # (n - 1, 5): x, y, w, h, area; label 0 is the paper
    specks = _far(stats) & (stats[:, 4] < NOISE * stats[:, 4].max())
    if specks.any():
        stats = stats[~specks]
    x0, y0, x1, y1 = stats[:, 0], stats[:, 1], stats[:, 0] + stats[:, 2], stats[:, 1] + stats[:, 3]
    b = int(np.argmax(stats[:, 4]))  # every piece near the biggest, as the stage would join them
    gap_x, gap_y = np.maximum(x0 - x1[b], x0[b] - x1), np.maximum(y0 - y1[b], y0[b] - y1)
    far = np.maximum(gap_x, gap_y) > JOIN_GAP * max(stats[b, 2], stats[b, 3])
    h, w = mask.shape
    sides = int(((x0 == 0).astype(int) + (y0 == 0) + (x1 == w) + (y1 == h)).sum())  # edges the pieces touch
    if sides > 1:
        return None
    if sides == 1:  # a lone solid piece cropped at one edge is a digit cropped tight; a shadow is not solid ink
        lone = len(stats) == 1 and float(np.median(ink[mask])) >= SOLID * top_ink
        if not lone:
            return None
    tall = stats[b, 3]
    beside = (stats[:, 3] >= NEIGHBOUR * tall) & (gap_x <= tall) & (gap_y <= 0)  # digits of a number
    if (far & ~beside).any():
        return None
    big = stats[:, 4] >= PIECE_SHARE * stats[:, 4].sum()
    if big.sum() > PLAIN_MAX_PIECES or _nested(x0[big], y0[big], x1[big], y1[big]):
        return None
    if specks.any():
        return mask & ~np.isin(labels, 1 + np.flatnonzero(specks))
    return mask


def _far(stats: np.ndarray) -> np.ndarray:
    """(n,) bool: which pieces (connectedComponentsWithStats rows) lie beyond JOIN_GAP of the biggest."""
    x0, y0, x1, y1 = stats[:, 0], stats[:, 1], stats[:, 0] + stats[:, 2], stats[:, 1] + stats[:, 3]
    b = int(np.argmax(stats[:, 4]))
    gap = np.maximum(np.maximum(x0 - x1[b], x0[b] - x1), np.maximum(y0 - y1[b], y0[b] - y1))
    return np.asarray(gap > JOIN_GAP * max(stats[b, 2], stats[b, 3]))


def _nested(x0: np.ndarray, y0: np.ndarray, x1: np.ndarray, y1: np.ndarray) -> bool:
    """Does one box (x0, y0, x1, y1 per piece) hold another? A printed box round the digit."""
    return any(((x0 > x0[i]) & (y0 > y0[i]) & (x1 < x1[i]) & (y1 < y1[i])).any() for i in range(len(x0)))


def find_digit(grey: np.ndarray) -> Scene | None:
    """The digit's ink in a (H, W) float32 image, dark ink on lighter paper; None when no piece
    of ink stands out (the caller frames the plain ink map instead).

    The lighting's kernel is a few strokes wide: wider than the pen, so that strokes are ink;
    narrower than a finger's shadow, so that the shadow stays lighting. The stroke is measured
    on the darkest ink of a first look with a kernel of CLOSING_SHARE (a shadow is fainter)."""
    img = np.clip(grey * 255.0, 0, 255).astype(np.uint8)
    h, w = img.shape
    surface, inside = _surface(img)
    first = _ink(img, max(15, round(max(h, w) * CLOSING_SHARE)) | 1)
    darkest = (first > STRONG * _top(first)).astype(np.uint8)
    stroke = 2.0 * _half_stroke(darkest, inside)
    wide = _ink(img, max(11, round(stroke * STROKE_ROOM)) | 1)
    # A finger's shadow can be as narrow as two strokes: the wide kernel fills it as if it were
    # ink. A kernel just wider than a stroke keeps it lighting; the dark pen, where that narrow
    # kernel cannot fill a broad junction of strokes, keeps the wide kernel's ink.
    narrow = _ink(img, max(5, round(stroke * SHADOW_ROOM)) | 1)
    ink = np.where(wide >= PEN * _top(wide), wide, np.minimum(wide, narrow))
    level = max(INK_FLOOR, INK_LEVEL * _top(ink))
    mask = _without_lines(_open2(ink > level), inside)
    chosen = _choose(mask, ink, inside) if inside is not None else None
    if chosen is None:
        surface = None
        chosen = _choose(mask, ink, None)
    if chosen is None:
        return None
    keep, box = chosen
    keep = cv2.dilate(keep, np.ones((3, 3), np.uint8))
    digit = ink * keep
    turn = _turn(surface, h, w) if surface is not None else 0.0
    if abs(turn) >= MIN_TURN:  # people write square to the sheet: turn the sheet square again
        x, y, bw, bh = box
        rotation = cv2.getRotationMatrix2D((x + bw / 2, y + bh / 2), turn, 1.0)
        digit = cv2.warpAffine(digit, rotation, (w, h), flags=cv2.INTER_LINEAR, borderValue=(0.0,))
    return Scene(digit, surface, box)


def _turn(polygon: np.ndarray, h: int, w: int) -> float:
    """How far the sheet is turned, in degrees within (-45, 45]: the direction of its longest
    edge that is not the picture's own edge (a sheet partly out of the picture is cut there),
    when another long edge agrees with it mod 90 (a sheet has corners; a shadow's edge alone
    says nothing about the sheet); else 0."""
    edges = []
    for (x0, y0), (x1, y1) in zip(polygon, np.roll(polygon, -1, axis=0), strict=True):
        sides = ((x0, x1), (y0, y1), (x0 - w, x1 - w), (y0 - h, y1 - h))
        if any(abs(a) <= 2 and abs(b) <= 2 for a, b in sides):
            continue  # along the picture's edge
        angle = float(np.degrees(np.arctan2(y1 - y0, x1 - x0)))
        edges.append((float(np.hypot(x1 - x0, y1 - y0)), (angle + 45.0) % 90.0 - 45.0))
    edges.sort(reverse=True)
    if len(edges) < 2:
        return 0.0
    (longest, turn), rest = edges[0], edges[1:]
    agree = [a for length, a in rest if length >= 0.3 * longest and abs((a - turn + 45.0) % 90.0 - 45.0) <= 5.0]
    return turn if agree else 0.0


def _top(ink: np.ndarray) -> float:
    """The ink's robust peak: its 99.8th percentile (a few hot pixels do not set it)."""
    return float(np.percentile(ink, 99.8))


def _ink(img: np.ndarray, k: int) -> np.ndarray:
    """How much darker than the paper each pixel is, as a ratio: (H, W) float32 in [0, 1]. The
    paper is a k x k closing (what is left when every dark feature narrower than k is filled)."""
    paper = cv2.morphologyEx(img, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (k, k)))
    paper = cv2.blur(paper, (5, 5))
    return np.clip(1.0 - img.astype(np.float32) / np.maximum(paper.astype(np.float32), 1.0), 0.0, 1.0)


def _open2(mask: np.ndarray) -> np.ndarray:
    """Opening by a 2x2 square, as uint8: a lone pixel of noise goes, a 2 px stroke stays. (OpenCV
    anchors an even kernel off-centre; erode and dilate from opposite corners to stay in place.)"""
    square = np.ones((2, 2), np.uint8)
    eroded = cv2.erode(mask.astype(np.uint8), square, anchor=(0, 0))
    return cv2.dilate(eroded, square, anchor=(1, 1))


def _half_stroke(mask: np.ndarray, inside: np.ndarray | None) -> float:
    """Half the width of a (H, W) uint8 mask's strokes: the 95th percentile of its distance
    transform, on the writing surface when one was found and holds enough of the mask (a dark
    table beside the sheet is no stroke)."""
    depth = cv2.distanceTransform(mask, cv2.DIST_L2, 3)
    on = mask > 0
    if inside is not None and np.count_nonzero(on & (inside > 0)) >= MIN_STROKE_PIXELS:
        on &= inside > 0
    return float(np.percentile(depth[on], 95)) if on.any() else 0.0


def _without_lines(mask: np.ndarray, inside: np.ndarray | None = None) -> np.ndarray:
    """The stroke mask less long, thin, straight runs (printed lines, box walls), with the
    strokes that crossed them bridged across again. Thin: at most LINE_THICK px, or half the
    width of the other ink's strokes (on the writing surface) when those are wide (a close-up
    of a form box)."""
    h, w = mask.shape
    length = max(12, round(max(h, w) * LINE_SHARE))
    found = []
    for horizontal in (True, False):
        drift = cv2.getStructuringElement(
            cv2.MORPH_RECT, (1, 2 * LINE_TILT + 1) if horizontal else (2 * LINE_TILT + 1, 1)
        )
        along = cv2.getStructuringElement(cv2.MORPH_RECT, (length, 1) if horizontal else (1, length))
        found.append(cv2.morphologyEx(cv2.dilate(mask, drift), cv2.MORPH_OPEN, along) & mask)
    if not (found[0].any() or found[1].any()):
        return mask
    rest = mask & (1 - (found[0] | found[1]))
    thick = max(LINE_THICK, _half_stroke(rest, inside))
    out = mask.copy()
    for horizontal, runs in zip((True, False), found, strict=True):
        if not runs.any():
            continue
        _, labels, stats, _ = cv2.connectedComponentsWithStats(runs, connectivity=8)
        span = stats[:, 2] if horizontal else stats[:, 3]
        thin = (stats[:, 4] <= thick * span) & (span >= length)
        thin[0] = False
        if not thin[1:].any():
            continue
        line = thin[labels].astype(np.uint8)  # (H, W) 1 on a printed line
        kept = out & (1 - line)
        across = cv2.getStructuringElement(cv2.MORPH_RECT, (1, 9) if horizontal else (9, 1))
        out = kept | (cv2.morphologyEx(kept, cv2.MORPH_CLOSE, across) & line)
    return out


def draw(view: np.ndarray, surface: np.ndarray | None, box: tuple[int, int, int, int]) -> np.ndarray:
    """(H, W, 3) uint8 RGB with the surface's outline (green) and the digit's box (red) on it."""
    width = max(1, round(max(view.shape[:2]) / 200))
    if surface is not None:
        cv2.polylines(view, [surface.reshape(-1, 1, 2)], True, (0, 170, 0), width)
    x, y, w, h = box
    cv2.rectangle(view, (x - width, y - width), (x + w + width - 1, y + h + width - 1), (220, 0, 0), width)
    return view


def bright_surface(grey: np.ndarray) -> bool:
    """Does a (H, W) float image hold a bright surface (a sheet, a board), not just bright
    strokes? Its Otsu-bright side, eroded at the coarse scale, still covers SURFACE_SHARE, in
    one solid region (a sheet is; a ring is not), on a ground that is not pure black (a white
    digit's canvas is)."""
    small = _coarse(np.clip(grey * 255.0, 0, 255).astype(np.uint8))
    _, bright = cv2.threshold(small, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    solid = cv2.erode(bright, np.ones((5, 5), np.uint8))
    if float(solid.mean()) < SURFACE_SHARE or float(np.median(small[bright == 0])) < SURFACE_GROUND:
        return False  # a ground of pure black is a drawing's canvas (white on black), not a table
    _, labels, stats, _ = cv2.connectedComponentsWithStats(solid, connectivity=4)
    biggest = 1 + int(np.argmax(stats[1:, 4]))
    contours, _ = cv2.findContours((labels == biggest).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    outline = max(contours, key=cv2.contourArea)
    return float(stats[biggest, 4]) >= SURFACE_SOLIDITY * cv2.contourArea(cv2.convexHull(outline))


def _coarse(img: np.ndarray) -> np.ndarray:
    """A (H, W) uint8 image at 96 px on its long side, blurred: the surface's scale."""
    h, w = img.shape
    scale = 96 / max(h, w)
    small = cv2.resize(img, (max(8, round(w * scale)), max(8, round(h * scale))), interpolation=cv2.INTER_AREA)
    return cv2.GaussianBlur(small, (5, 5), 0)


def _surface(img: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The writing surface: the largest bright region, as a convex polygon (x, y) and a mask
    shrunk off its edge; (None, None) when the picture is all surface (or all dark)."""
    h, w = img.shape
    small = _coarse(img)
    scale = small.shape[1] / w
    _, bright = cv2.threshold(small, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    dark = small[bright == 0]
    if dark.size < 0.03 * small.size or dark.size > 0.75 * small.size:
        return None, None
    if float(small[bright == 1].mean()) - float(dark.mean()) < 40:
        return None, None
    n, labels, stats, _ = cv2.connectedComponentsWithStats(bright, connectivity=4)
    if n <= 1:
        return None, None
    best = 1 + int(np.argmax(stats[1:, 4]))
    contours, _ = cv2.findContours((labels == best).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    hull = cv2.convexHull(max(contours, key=cv2.contourArea))
    polygon = np.round(hull.reshape(-1, 2) / scale).astype(np.int32)
    filled = np.zeros((h, w), np.uint8)
    cv2.fillPoly(filled, [polygon], (1,))
    edge = max(3, round(max(h, w) * 0.015)) | 1
    return polygon, cv2.erode(filled, cv2.getStructuringElement(cv2.MORPH_RECT, (edge, edge)))


def _choose(
    mask: np.ndarray, ink: np.ndarray, inside: np.ndarray | None
) -> tuple[np.ndarray, tuple[int, int, int, int]] | None:
    """The digit's pieces among the mask's components: the best-scored piece and those near it,
    as an (H, W) uint8 mask, and their box (x, y, w, h)."""
    h, w = mask.shape
    n, labels, stats, centres = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n <= 1:
        return None
    x0, y0, bw, bh, area = (stats[1:, i].astype(np.float64) for i in range(5))
    x1, y1 = x0 + bw, y0 + bh
    cut = (x0 == 0) | (y0 == 0) | (x1 == w) | (y1 == h)  # cut off by the picture's edge
    outside = np.zeros_like(cut)
    if inside is not None:
        share = np.bincount(labels.ravel(), weights=inside.ravel().astype(np.float64), minlength=n)[1:] / area
        if ((share > 0.3) & (share < 0.95) & (area >= 0.25 * area[share >= 0.95].max(initial=0))).any():
            return None  # a real piece of ink crosses the surface's edge: the surface is wrong
        outside = share < 0.95
        m = cv2.moments(inside, binaryImage=True)
        _, _, sw, sh = cv2.boundingRect(inside)
        cy, cx, radius = m["m01"] / max(m["m00"], 1.0), m["m10"] / max(m["m00"], 1.0), 0.5 * np.hypot(sw, sh)
    else:
        cy, cx, radius = (h - 1) / 2, (w - 1) / 2, 0.5 * np.hypot(h, w)
    strength = np.bincount(labels.ravel(), weights=ink.ravel().astype(np.float64), minlength=n)[1:] / area
    d = np.hypot(centres[1:, 1] - cy, centres[1:, 0] - cx) / max(radius, 1.0)
    score = area * strength**2 * np.exp(-0.5 * (d / SEED_CENTRE) ** 2)
    score[cut] *= CUT_SCORE  # a digit crowded to the edge (one box of a row) is still a digit
    score[outside] = 0.0
    sizable = ~outside & (area >= 0.05 * area[~outside].max(initial=0))
    if sizable.any():  # the digit is among the darkest sizable pieces: a shadow is fainter than a pen
        score[strength < KIN * strength[sizable].max()] = 0.0
    if score.max() <= 0:
        return None
    seed = int(np.argmax(score))
    rivals = ~outside & (score > 0) & (area >= RIVAL * area[seed])
    if rivals.sum() > MAX_RIVALS:
        return None  # a texture or a busy photo, not a digit on a surface: leave it to the detector
    usable = ~cut & ~outside & (area >= SPECK * area[seed]) & (strength >= KIN * strength[seed])
    group = np.zeros(len(area), bool)
    group[seed] = True
    gx0, gy0, gx1, gy1 = x0[seed], y0[seed], x1[seed], y1[seed]
    while True:
        gap = JOIN_GAP * max(gx1 - gx0, gy1 - gy0)
        dx = np.maximum(0, np.maximum(x0 - gx1, gx0 - x1))
        dy = np.maximum(0, np.maximum(y0 - gy1, gy0 - y1))
        tall = gy1 - gy0
        beside = (bh >= NEIGHBOUR * tall) & (dx <= tall) & (dy == 0)  # another digit of a number
        near = usable & ~group & ((np.maximum(dx, dy) <= gap) | beside)
        if not near.any():
            break
        group |= near
        gx0, gy0 = min(gx0, x0[group].min()), min(gy0, y0[group].min())
        gx1, gy1 = max(gx1, x1[group].max()), max(gy1, y1[group].max())
    keep = np.zeros((h, w), np.uint8)
    for label in np.flatnonzero(group) + 1:  # a few pieces: one comparison each beats a lookup
        keep |= (labels == label).astype(np.uint8)
    return keep, (int(gx0), int(gy0), int(gx1 - gx0), int(gy1 - gy0))


ROW_GAP = 1.5  # of the chosen digit's height: the next digit of a number is at most this far along its row
ROW_OVERLAP = 0.5  # of a piece's height: a piece this much inside the row's band is in the row
ROW_TALL = 1.6  # of the chosen digit's height: no piece of the row is taller or wider


def find_writing(grey: np.ndarray) -> Writing | None:
    """find_digit for a number (contract/number.py): the same light, surface and printed lines,
    the same choice of the digit, and then every piece along that digit's row, not only the
    digit and its close neighbours. A turned sheet is turned square first, so that its rows are
    the picture's rows (Writing.turn says by how much)."""
    img = np.clip(grey * 255.0, 0, 255).astype(np.uint8)
    h, w = img.shape
    surface, inside = _surface(img)
    first = _ink(img, max(15, round(max(h, w) * CLOSING_SHARE)) | 1)
    darkest = (first > STRONG * _top(first)).astype(np.uint8)
    depth = cv2.distanceTransform(darkest, cv2.DIST_L2, 3)[darkest > 0]
    stroke = 2.0 * float(np.percentile(depth, 95)) if depth.size else 0.0
    ink = _ink(img, max(11, round(stroke * STROKE_ROOM)) | 1)
    level = max(INK_FLOOR, INK_LEVEL * _top(ink))
    mask = _without_lines(_open2(ink > level))
    turn = _turn(surface, h, w) if surface is not None else 0.0
    if inside is not None and abs(turn) >= MIN_TURN:  # people write square to the sheet: make its rows rows
        rotation = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), turn, 1.0)
        ink = cv2.warpAffine(ink, rotation, (w, h), flags=cv2.INTER_LINEAR, borderValue=(0.0,))
        mask = cv2.warpAffine(mask, rotation, (w, h), flags=cv2.INTER_NEAREST, borderValue=(0,))
        inside = cv2.warpAffine(inside, rotation, (w, h), flags=cv2.INTER_NEAREST, borderValue=(0,))
    else:
        turn = 0.0
    chosen = _choose(mask, ink, inside) if inside is not None else None
    if chosen is None:
        surface, inside = None, None
        chosen = _choose(mask, ink, None)
    if chosen is None:
        return None
    keep, box = _row(mask, ink, chosen[0], chosen[1], inside)
    keep = cv2.dilate(keep, np.ones((3, 3), np.uint8))
    return Writing(ink * keep, surface, box, turn)


@dataclass(frozen=True)
class Writing(Scene):
    """find_writing's finding: `ink` and `box` are turned by `turn` degrees about the picture's
    centre (cv2.getRotationMatrix2D's sense) when the sheet was turned; `surface` is not."""

    turn: float = 0.0


def _row(
    mask: np.ndarray, ink: np.ndarray, keep: np.ndarray, box: tuple[int, int, int, int], inside: np.ndarray | None
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The chosen digit's pieces and every piece chained to them along its row: as dark, not
    cut by the picture's edge, inside the surface, in the row's band, at most ROW_GAP digit
    heights from the last one."""
    h, w = mask.shape
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    x0, y0, bw, bh, area = (stats[1:, i].astype(np.float64) for i in range(5))
    x1, y1 = x0 + bw, y0 + bh
    strength = np.bincount(labels.ravel(), weights=ink.ravel().astype(np.float64), minlength=n)[1:] / np.maximum(
        area, 1
    )
    mine = np.bincount(labels.ravel(), weights=keep.ravel().astype(np.float64), minlength=n)[1:] > 0
    cut = (x0 == 0) | (y0 == 0) | (x1 == w) | (y1 == h)
    ok = ~cut & (area >= SPECK * area[mine].max()) & (strength >= KIN * strength[mine].max())
    if inside is not None:
        share = np.bincount(labels.ravel(), weights=inside.ravel().astype(np.float64), minlength=n)[1:] / np.maximum(
            area, 1
        )
        ok &= share >= 0.95
    group = mine.copy()
    gx, gy, gw, gh = box
    tall = float(gh)
    ok &= (bh <= ROW_TALL * tall) & (bw <= ROW_TALL * tall)  # a sheet's edge, a table's grain: not a digit
    while True:
        band = np.minimum(y1, gy + gh) - np.maximum(y0, gy)  # overlap with the row's band
        dx = np.maximum(0, np.maximum(x0 - (gx + gw), gx - x1))
        near = ok & ~group & (band >= ROW_OVERLAP * bh) & (dx <= ROW_GAP * tall)
        if not near.any():
            break
        group |= near
        gx0, gy0 = min(gx, x0[group].min()), min(gy, y0[group].min())
        gx1, gy1 = max(gx + gw, x1[group].max()), max(gy + gh, y1[group].max())
        gx, gy, gw, gh = int(gx0), int(gy0), int(gx1 - gx0), int(gy1 - gy0)
    out = np.zeros((h, w), np.uint8)
    for label in np.flatnonzero(group) + 1:
        out |= (labels == label).astype(np.uint8)
    return out, (int(gx), int(gy), int(gw), int(gh))
