"""Tests for protocol/regions.py (the pure-Python geometry vendored into the plugins)."""

from __future__ import annotations

import ast
import math
import random
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from protocol import regions
from protocol.regions import (
    Box,
    FrameTransform,
    Framing,
    RegionError,
    context_box,
    mask_bbox,
    model_square,
)


def test_module_is_stdlib_only() -> None:
    """Krita/GIMP vendor this file: it must import nothing outside the standard library."""
    tree = ast.parse(Path(regions.__file__).read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "no relative imports: the file is vendored on its own"
            names.add((node.module or "").split(".")[0])
    assert names, "expected some imports"
    assert names <= set(sys.stdlib_module_names) | {"__future__"}, names


# --------------------------------------------------------------------------- Box


def test_box_helpers() -> None:
    a = Box(2, 3, 10, 5)
    assert (a.x1, a.y1, a.area, a.center) == (12, 8, 50, (7.0, 5.5))
    assert a.intersect(Box(10, 0, 10, 4)) == Box(10, 3, 2, 1)
    assert a.intersect(Box(20, 20, 3, 3)).empty
    assert a.union(Box(-1, 7, 2, 2)) == Box.from_corners(-1, 3, 12, 9)
    assert a.union(Box(0, 0, 0, 0)) == a
    assert a.contains(Box(2, 3, 10, 5)) and not a.contains(Box(1, 3, 2, 2))
    assert a.clip(8, 100) == Box(2, 3, 6, 5)
    assert a.translate(-2, 1) == Box(0, 4, 10, 5)
    assert Box.of([1, 2, 3, 4]) == Box(1, 2, 3, 4)
    assert Box.of((1.0, 2, 3, 4)) == Box(1, 2, 3, 4)
    with pytest.raises(RegionError):
        Box.of([1, 2, 3])
    with pytest.raises(RegionError):
        Box.of([1.5, 2, 3, 4])


# --------------------------------------------------------------------------- Framing


def test_framing_dicts() -> None:
    assert Framing.from_dict(None) == Framing("pad")
    assert Framing.from_dict({}) == Framing("pad")
    box = Framing.from_dict({"kind": "box", "factor": 0.7, "future_key": 1})
    assert box.kind == "box" and box.factor == 0.7
    assert Framing.from_dict(box.to_dict()) == box
    assert box.to_dict() == {"kind": "box", "factor": 0.7}
    assert Framing().to_dict() == {"kind": "pad"}
    assert Framing.from_dict({"kind": "box", "factor": 1}).factor == 1.0


@pytest.mark.parametrize(
    "bad",
    [
        {"kind": "similarity"},
        {"kind": "box"},
        {"kind": "box", "factor": 0},
        {"kind": "box", "factor": -0.5},
        {"kind": "box", "factor": 1.5},
        {"kind": "box", "factor": "0.7"},
        {"kind": "box", "factor": True},
        {"kind": "box", "factor": float("nan")},
        [("kind", "box")],
    ],
)
def test_framing_rejects(bad: object) -> None:
    with pytest.raises(RegionError):
        Framing.from_dict(bad)  # type: ignore[arg-type]


def test_box_framing_example() -> None:
    # A 70-px selection with F = 0.7 covers 70% of a 100-px frame, centred on it.
    assert model_square(Box(10, 20, 70, 70), Framing("box", 0.7)) == (-5, 5, 100)
    # The longer side decides; the short axis is centred.
    assert model_square(Box(0, 0, 40, 20), Framing("box", 0.5)) == (-20, -30, 80)


def test_box_framing_random() -> None:
    rnd = random.Random(1)
    for _ in range(2000):
        box = Box(rnd.randint(-50, 500), rnd.randint(-50, 500), rnd.randint(1, 300),
                  rnd.randint(1, 300))
        factor = rnd.choice([1.0, 0.9, 0.7, 0.5, 0.33, rnd.uniform(0.05, 1.0)])
        x0, y0, side = model_square(box, Framing("box", factor))
        target = max(box.w, box.h) / factor
        assert target - 1e-6 <= side < target + 1, (box, factor, side)
        cx, cy = box.center
        assert abs(x0 + side / 2 - cx) <= 0.5 and abs(y0 + side / 2 - cy) <= 0.5
        assert Box(x0, y0, side, side).contains(box)


def _pad_amount(w: int, h: int) -> float:
    return max(32.0, 0.1 * math.hypot(w, h)) + 4.0 + 0.06 * (w + h) / 2


def test_pad_framing_example() -> None:
    # 100×100: feather max(32, 14.1) = 32, grow 4, padding 6 → 42 a side → 184 (÷8 = 23).
    assert model_square(Box(0, 0, 100, 100)) == (-42, -42, 184)
    # 1×1: 1 + 2·36.06 = 73.1 → 80.
    assert model_square(Box(5, 5, 1, 1), Framing()) == (5 - 40, 5 - 40, 80)


def test_pad_framing_random() -> None:
    rnd = random.Random(2)
    for _ in range(2000):
        box = Box(rnd.randint(-20, 900), rnd.randint(-20, 900), rnd.randint(1, 900),
                  rnd.randint(1, 900))
        x0, y0, side = model_square(box, Framing("pad"))
        need = max(box.w, box.h) + 2 * _pad_amount(box.w, box.h)
        assert side % 8 == 0 and need - 1e-6 <= side < need + 8, (box, side, need)
        cx, cy = box.center
        assert abs(x0 + side / 2 - cx) <= 0.5 and abs(y0 + side / 2 - cy) <= 0.5
        assert Box(x0, y0, side, side).contains(box)


def test_empty_selection_box() -> None:
    with pytest.raises(RegionError, match="the selection is empty"):
        model_square(Box(3, 3, 0, 5))
    assert issubclass(RegionError, ValueError)


# --------------------------------------------------------------------------- transforms


def test_square_transform_round_trip() -> None:
    framing = Framing("box", 0.7)
    tr = framing.transform(Box(10, 20, 70, 70))
    assert tr.axis_aligned and tr.bounding_square() == (-5, 5, 100)
    assert tr.to_frame(-5, 5) == pytest.approx((0.0, 0.0))
    assert tr.to_frame(95, 105) == pytest.approx((1.0, 1.0))
    assert tr.to_frame(45, 55, resolution=64) == pytest.approx((32.0, 32.0))
    assert tr.from_frame(32, 32, resolution=64) == pytest.approx((45.0, 55.0))
    rnd = random.Random(3)
    for _ in range(200):
        x, y = rnd.uniform(-100, 300), rnd.uniform(-100, 300)
        assert tr.from_frame(*tr.to_frame(x, y)) == pytest.approx((x, y))


def test_similarity_transform_inverse() -> None:
    """The slot a landmark-based face framing will fill: rotation + scale + translation."""
    theta, scale = 0.3, 1 / 120
    tr = FrameTransform(scale * math.cos(theta), scale * math.sin(theta), 0.1, -0.2)
    assert not tr.axis_aligned
    assert tr.scale == pytest.approx(scale)
    for u, v in [(0, 0), (1, 0), (0.5, 0.5), (0.2, 0.9)]:
        assert tr.to_frame(*tr.from_frame(u, v)) == pytest.approx((u, v))
    x0, y0, side = tr.bounding_square()
    for u, v in [(0, 0), (1, 0), (0, 1), (1, 1)]:
        x, y = tr.from_frame(u, v)
        assert x0 <= x <= x0 + side and y0 <= y <= y0 + side


# --------------------------------------------------------------------------- context_box


@pytest.mark.parametrize("framing", [Framing(), Framing("box", 0.7), Framing("box", 1.0)])
def test_context_box_random(framing: Framing) -> None:
    rnd = random.Random(4)
    for _ in range(1500):
        cw, ch = rnd.randint(1, 400), rnd.randint(1, 400)
        x, y = rnd.randint(-30, cw - 1), rnd.randint(-30, ch - 1)
        sel = Box(x, y, rnd.randint(1, 120), rnd.randint(1, 120))
        if sel.clip(cw, ch).empty:
            with pytest.raises(RegionError):
                context_box(sel, cw, ch, framing)
            continue
        ctx = context_box(sel, cw, ch, framing)
        assert Box(0, 0, cw, ch).contains(ctx)
        assert ctx.contains(sel.clip(cw, ch))
        sx, sy, side = model_square(sel.clip(cw, ch), framing)
        assert ctx == Box(sx, sy, side, side).clip(cw, ch)


def test_context_box_edge_and_errors() -> None:
    # A selection in the corner: the square reaches past the canvas, the crop does not.
    ctx = context_box(Box(0, 0, 10, 10), 500, 400)
    assert ctx.x == 0 and ctx.y == 0 and ctx.w < 80 and ctx.h < 80
    x0, y0, side = model_square(Box(0, 0, 10, 10))
    assert x0 < 0 and y0 < 0
    assert ctx == Box(0, 0, x0 + side, y0 + side)
    with pytest.raises(RegionError, match="empty"):
        context_box(Box(1, 1, 0, 0), 10, 10)
    with pytest.raises(RegionError, match="outside"):
        context_box(Box(20, 20, 5, 5), 10, 10)
    with pytest.raises(RegionError):
        context_box(Box(0, 0, 5, 5), 0, 10)


# --------------------------------------------------------------------------- mask_bbox


def _numpy_bbox(mask: np.ndarray) -> Box | None:
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return None
    return Box(int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1),
               int(ys.max() - ys.min() + 1))


def test_mask_bbox_matches_numpy() -> None:
    rng = np.random.default_rng(5)
    for trial in range(1500):
        h, w = (int(v) for v in rng.integers(1, 40, 2))
        if trial % 7 == 0:
            h = 1
        if trial % 11 == 0:
            w = 1
        density = rng.choice([0.0005, 0.01, 0.05, 0.3, 1.0])
        values = rng.integers(1, 256, (h, w), dtype=np.uint8)
        mask = np.where(rng.random((h, w)) < density, values, 0).astype(np.uint8)
        assert mask_bbox(mask.tobytes(), w, h) == _numpy_bbox(mask), mask


def test_mask_bbox_corners_and_inputs() -> None:
    mask = np.zeros((7, 9), np.uint8)
    assert mask_bbox(mask.tobytes(), 9, 7) is None
    for y, x in [(0, 0), (6, 8), (0, 8), (6, 0), (3, 4)]:
        m = mask.copy()
        m[y, x] = 1
        assert mask_bbox(m.tobytes(), 9, 7) == Box(x, y, 1, 1)
    m = mask.copy()
    m[1, 8] = 5
    m[5, 0] = 5
    m[3, 4] = 5
    data = m.tobytes()
    for buf in (data, bytearray(data), memoryview(data)):
        assert mask_bbox(buf, 9, 7) == Box(0, 1, 9, 5)
    with pytest.raises(RegionError):
        mask_bbox(data[:-1], 9, 7)
    with pytest.raises(RegionError):
        mask_bbox(b"", 0, 0)


@pytest.mark.parametrize("shape", [(300, 8000), (8000, 300)])
def test_mask_bbox_fast(shape: tuple[int, int]) -> None:
    h, w = shape
    rng = np.random.default_rng(6)
    mask = np.zeros(shape, np.uint8)
    mask[2:h - 3, 5:w - 7] = rng.integers(0, 256, (h - 5, w - 12), dtype=np.uint8)
    mask[h // 2, 1] = 9
    data = mask.tobytes()
    start = time.perf_counter()
    box = mask_bbox(data, w, h)
    elapsed = time.perf_counter() - start
    assert box == _numpy_bbox(mask)
    assert elapsed < 0.25, f"mask_bbox took {elapsed:.3f} s"
