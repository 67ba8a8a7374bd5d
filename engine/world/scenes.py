"""Canvas scenes: what an artist edits. Any number of objects, any size and place, with
per-object ground truth, soft masks and the selections evaluation draws around them.

Objects are spaced so that the frame of any selection ``selection_for`` can produce (up to
the loosest margin, with its centre offset) never touches another object, and by default
lies inside the canvas. Canvas objects have no intrinsic ``size``: that is decided by the
selection ("tight" -> large in the frame, "loose" -> small); ``framed_attrs`` adds it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from engine.world.color import hsv_to_rgb
from engine.world.framing import Box, BoxFraming, crop_frame
from engine.world.render import (
    _complete_attrs,
    _gradient_amplitude,
    _noise,
    coverage,
    object_geometry,
    sample_hsv,
)
from engine.world.spec import WORLD_SPEC, WorldSpec

__all__ = [
    "Framed",
    "Scene",
    "SceneObject",
    "choices_rng",
    "frame_of",
    "frame_reach",
    "framed_attrs",
    "place_objects",
    "render_scene",
    "selection_for",
]

Looseness = Literal["tight", "loose"] | float


@dataclass
class SceneObject:
    """Ground truth of one object on a canvas (pixel coordinates, x right, y down).

    ``center`` is the bbox centre and ``radius`` half the bbox's longer side (see spec).
    ``bbox`` is the exact continuous (x0, y0, x1, y1); ``mask`` the soft coverage (H, W).
    ``attrs`` holds shape, color and background (no size: the selection decides it).
    """

    attrs: dict[str, str]
    center: tuple[float, float]
    radius: float
    bbox: Box
    mask: np.ndarray
    rotation: float = 0.0
    rgb: tuple[float, float, float] = (0.0, 0.0, 0.0)


@dataclass
class Scene:
    image: np.ndarray  # uint8 (H, W, 3)
    objects: list[SceneObject]
    background: str
    background_rgb: tuple[float, float, float] = (0.0, 0.0, 0.0)
    seed: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


def frame_reach(radius: float | np.ndarray, spec: WorldSpec = WORLD_SPEC) -> Any:
    """Half-side of the largest square any ``selection_for`` frame of this object can reach,
    measured from the object's centre (loosest margin, plus centre offset and rounding)."""
    side = 2.0 * radius * (1.0 + 2.0 * spec.max_margin()) / spec.framing_factor
    return side * (0.5 + spec.center_jitter) + 1.0


def place_objects(
    rng: np.random.Generator,
    width: int,
    height: int,
    n: int,
    radius_range: tuple[float, float] | None = None,
    radii: Sequence[float] | None = None,
    frames_inside: bool = True,
    spec: WorldSpec = WORLD_SPEC,
    tries: int = 400,
) -> list[tuple[float, float, float]]:
    """Random (cx, cy, radius) for n objects obeying the frame-clearance rule.

    For every pair, the square of half-side ``frame_reach(r_i)`` around i's centre must not
    touch j's bbox (the square of half-side r_j around j's centre) plus ``scene_gap_px``.
    Radii come from ``radii`` or log-uniformly from ``radius_range`` (default: from
    ``min_object_px / 2`` up to what fits). Raises ValueError when the objects do not fit.
    """
    r_min = spec.min_object_px / 2.0
    reach_per_r = frame_reach(1.0, spec) - 1.0
    limit = min(width, height) / 2.0
    r_fit = (limit - 1.0) / reach_per_r if frames_inside else limit
    if radii is not None:
        rs = [float(r) for r in radii]
        if len(rs) != n:
            raise ValueError("radii must have n entries")
    else:
        # Default upper radius: 15% of the shorter side, less when many objects share it.
        crowd = np.sqrt(width * height / max(n, 1)) / (2.0 * reach_per_r)
        lo, hi = radius_range if radius_range is not None else (r_min, min(0.3 * limit, crowd))
        lo = max(lo, r_min)
        hi = max(lo, min(hi, r_fit))
        if r_fit < lo:
            raise ValueError(
                f"a {width}x{height} canvas cannot hold an object of radius {lo:.1f} px "
                "with its loosest frame inside"
            )
        rs = list(np.exp(rng.uniform(np.log(lo), np.log(hi), size=n)))
    for _ in range(12):
        placed = _try_place(rng, width, height, sorted(rs, reverse=True), frames_inside, spec,
                            tries)
        if placed is not None:
            order = rng.permutation(len(placed))
            return [placed[i] for i in order]
        if radii is not None or max(rs) <= r_min:
            break
        rs = [max(r_min, 0.85 * r) for r in rs]  # crowded: shrink everything and retry
    raise ValueError(f"cannot place {n} objects on a {width}x{height} canvas")


def _try_place(
    rng: np.random.Generator,
    width: int,
    height: int,
    rs: Sequence[float],
    frames_inside: bool,
    spec: WorldSpec,
    tries: int,
) -> list[tuple[float, float, float]] | None:
    placed: list[tuple[float, float, float]] = []
    gap = spec.scene_gap_px
    for r in rs:
        reach = frame_reach(r, spec)
        pad = reach if frames_inside else r
        if width - 2 * pad < 0 or height - 2 * pad < 0:
            return None
        cand = np.stack(
            [rng.uniform(pad, width - pad, size=tries), rng.uniform(pad, height - pad, size=tries)],
            axis=-1,
        )
        ok = np.ones(tries, dtype=bool)
        for cx, cy, rj in placed:
            cheb = np.maximum(np.abs(cand[:, 0] - cx), np.abs(cand[:, 1] - cy))
            ok &= cheb >= max(reach + rj, frame_reach(rj, spec) + r) + gap
        if not ok.any():
            return None
        k = int(np.argmax(ok))
        placed.append((float(cand[k, 0]), float(cand[k, 1]), float(r)))
    return placed


def choices_rng(seed: int) -> np.random.Generator:
    """The random stream for choices made *about* the scene of ``seed`` (how many objects,
    which one to select, how loosely, what to ask for).

    :func:`render_scene` starts its own stream from ``seed``; drawing the choices from that
    same stream ties them to the scene's first draws (the object count decided the
    background: two-object scenes were always beige or grey). This stream is a spawned
    child of the seed, independent of the renderer's.
    """
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,)))


def render_scene(
    seed: int,
    width: int = 512,
    height: int = 512,
    n_objects: int = 3,
    objects: Sequence[Mapping[str, str]] | None = None,
    background: str | None = None,
    radius_range: tuple[float, float] | None = None,
    radii: Sequence[float] | None = None,
    frames_inside: bool = True,
    spec: WorldSpec = WORLD_SPEC,
) -> Scene:
    """Render a canvas scene with the world's renderer (same geometry, colours, variation).

    ``objects`` optionally fixes (partial) attributes per object (``shape``, ``color``);
    ``background`` fixes the scene background. Deterministic in all arguments.
    """
    rng = np.random.default_rng(seed)
    if objects is not None and len(objects) != n_objects:
        raise ValueError("objects must have n_objects entries")
    bg = background or spec.backgrounds[int(rng.integers(len(spec.backgrounds)))]
    bg_hsv = sample_hsv(rng, spec.background_regions[bg], 1, spec)[0]
    bg_rgb = hsv_to_rgb(bg_hsv).astype(np.float32)
    bg_grad = float(
        _gradient_amplitude(rng, bg_hsv[2:3], np.array([spec.background_regions[bg].v]), spec)[0]
    )
    bg_dir = rng.uniform(0, 2 * np.pi)
    xs = np.arange(width, dtype=np.float32) + 0.5
    ys = np.arange(height, dtype=np.float32) + 0.5
    u = ((xs[None, :] - width / 2) * np.cos(bg_dir) + (ys[:, None] - height / 2) * np.sin(bg_dir))
    u /= 0.5 * np.hypot(width, height)
    canvas = bg_rgb[None, None, :] * (1.0 + bg_grad * u)[..., None]

    placements = place_objects(
        rng, width, height, n_objects, radius_range, radii, frames_inside, spec
    )
    scene_objects: list[SceneObject] = []
    for k, (cx, cy, r) in enumerate(placements):
        given = dict(objects[k]) if objects is not None else {}
        given.pop("size", None)
        given["background"] = bg
        attrs = _complete_attrs(given, rng, spec)
        del attrs["size"]
        rot = float(rng.uniform(0.0, 1.0) * spec.rotation_periods[attrs["shape"]])
        hsv = sample_hsv(rng, spec.color_regions[attrs["color"]], 1, spec)[0]
        rgb = hsv_to_rgb(hsv).astype(np.float32)
        grad = float(
            _gradient_amplitude(rng, hsv[2:3], np.array([spec.color_regions[attrs["color"]].v]),
                                spec)[0]
        )
        gdir = rng.uniform(0, 2 * np.pi)
        geom = object_geometry([attrs["shape"]], rot, cx, cy, r, spec)
        bx0, by0, bx1, by1 = (float(v) for v in geom.bbox[0])
        wx0, wy0 = max(0, int(np.floor(bx0)) - 1), max(0, int(np.floor(by0)) - 1)
        wx1, wy1 = min(width, int(np.ceil(bx1)) + 1), min(height, int(np.ceil(by1)) + 1)
        cov = coverage(geom.shifted(wx0, wy0), wy1 - wy0, wx1 - wx0, spec.supersample)[0]
        mask = np.zeros((height, width), dtype=np.float32)
        mask[wy0:wy1, wx0:wx1] = cov
        uo = (xs[None, wx0:wx1] - cx) * np.cos(gdir) + (ys[wy0:wy1, None] - cy) * np.sin(gdir)
        f = 1.0 + grad * np.clip(uo / r, -1.0, 1.0)
        a = cov[..., None]
        win = canvas[wy0:wy1, wx0:wx1]
        canvas[wy0:wy1, wx0:wx1] = win * (1.0 - a) + (rgb[None, None, :] * f[..., None]) * a
        scene_objects.append(
            SceneObject(
                attrs=attrs,
                center=(cx, cy),
                radius=r,
                bbox=(bx0, by0, bx1, by1),
                mask=mask,
                rotation=rot,
                rgb=(float(rgb[0]), float(rgb[1]), float(rgb[2])),
            )
        )
    luma = np.array([rng.uniform(*spec.noise_luma_sigma)])
    chroma = np.array([rng.uniform(*spec.noise_chroma_sigma)])
    canvas = canvas[None] + _noise(rng, (1, height, width), luma, chroma)
    image = np.clip(canvas[0] + 0.5, 0, 255).astype(np.uint8)
    return Scene(
        image=image,
        objects=scene_objects,
        background=bg,
        background_rgb=(float(bg_rgb[0]), float(bg_rgb[1]), float(bg_rgb[2])),
        seed=seed,
    )


# --------------------------------------------------------------------------------------
# Selections and frames
# --------------------------------------------------------------------------------------
def _int_interval(center: float, length: int) -> tuple[int, int]:
    lo = int(np.floor(center - length / 2.0 + 0.5))
    return lo, lo + length


def selection_for(
    scene: Scene,
    index: int,
    looseness: Looseness = "tight",
    soft: bool = True,
    kind: Literal["rect", "ellipse"] = "rect",
    rng: np.random.Generator | None = None,
    feather: float | None = None,
    spec: WorldSpec = WORLD_SPEC,
) -> tuple[tuple[int, int, int, int], np.ndarray]:
    """The selection an evaluator draws around object ``index``: ``(box, mask uint8 HxW)``.

    ``box`` = (x0, y0, x1, y1) integer pixel edges (x1, y1 exclusive) = the mask's bounds.
    ``looseness``: "tight" / "loose" use the spec's nominal margins, or with ``rng`` a margin
    drawn from the named range plus a small centre offset (as a person's box would have);
    a float is an explicit margin. For "tight"/"loose" the box's longer side is rounded so
    that the framed radius stays inside the large/small band even for 24 px objects.

    ``kind="ellipse"`` draws the ellipse inscribed in the box, enlarged (about its centre)
    until it covers the object's mask; for angular shapes that makes the box, and hence the
    frame, larger than the margin alone says, so use "rect" when the size band matters.
    ``soft`` ramps the mask from 0 at the boundary to 255 at ``feather`` px inside; the
    default (4% of the box's longer side, less where the object comes closer to the edge)
    keeps the whole object at full strength. Otherwise the mask is binary.
    """
    obj = scene.objects[index]
    h, w = scene.height, scene.width
    bx0, by0, bx1, by1 = obj.bbox
    length = max(bx1 - bx0, by1 - by0)
    named = isinstance(looseness, str)
    if named and rng is not None:
        m = float(rng.uniform(*spec.margin_range(looseness)))  # type: ignore[arg-type]
    else:
        m = spec.margin_for(looseness)
    grow = m * length
    cx, cy = (bx0 + bx1) / 2.0, (by0 + by1) / 2.0
    bw, bh = bx1 - bx0 + 2 * grow, by1 - by0 + 2 * grow
    if rng is not None:
        side = max(bw, bh) / spec.framing_factor
        off = rng.uniform(-1.0, 1.0, size=2) * spec.center_jitter * side * 0.75
        # Never so far that the box cuts into the object.
        off = np.clip(off, -max(0.0, grow - 0.5), max(0.0, grow - 0.5))
        cx, cy = cx + off[0], cy + off[1]
    fw_ellipse = 0.0
    if kind == "ellipse":
        # Grow the inscribed ellipse about its centre until every object pixel lies at least
        # the feather width (plus pixel slack) inside it: scaling by k turns a point's
        # normalised radius rr into rr / k, its inner distance into about (k - rr) * min axis.
        yy, xx = np.nonzero(obj.mask > 0.0)
        a, b = bw / 2.0, bh / 2.0
        rr_max = float(np.sqrt((((xx + 0.5 - cx) / a) ** 2 + ((yy + 0.5 - cy) / b) ** 2).max()))
        if soft:
            fw_ellipse = (
                max(1.0, 0.08 * max(a, b) * max(rr_max, 1.0)) if feather is None
                else float(feather)
            )
        k = max(1.0, rr_max + (fw_ellipse + 0.75) / min(a, b))
        bw, bh = bw * k, bh * k
    elif kind != "rect":
        raise ValueError(f"kind must be 'rect' or 'ellipse', not {kind!r}")
    iw, ih = max(1, round(bw)), max(1, round(bh))
    if named and kind == "rect":
        band = spec.size_bands["large" if looseness == "tight" else "small"]
        # Rounding the longer side can push a small object's framed radius out of its band.
        lo_side = int(np.ceil(spec.framing_factor * obj.radius / band[1]))
        hi_side = int(np.floor(spec.framing_factor * obj.radius / band[0]))
        longer = min(max(max(iw, ih), lo_side), hi_side)
        if iw >= ih:
            iw, ih = longer, min(ih, longer)
        else:
            iw, ih = min(iw, longer), longer
    x0, x1 = _int_interval(cx, iw)
    y0, y1 = _int_interval(cy, ih)
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if x1 <= x0 or y1 <= y0:
        raise ValueError("selection lies outside the canvas")
    box = (x0, y0, x1, y1)
    if kind == "ellipse":
        fw = max(fw_ellipse, 1e-6)
    elif feather is not None:
        fw = float(feather)
    else:
        # 4% of the box, but never reaching into the object: full strength over the object.
        gap = min(bx0 - x0, by0 - y0, x1 - bx1, y1 - by1)
        fw = max(0.5, min(0.04 * max(x1 - x0, y1 - y0), gap - 0.5))
    xs = np.arange(x0, x1) + 0.5
    ys = np.arange(y0, y1) + 0.5
    if kind == "rect":
        dx = np.minimum(xs - x0, x1 - xs)
        dy = np.minimum(ys - y0, y1 - ys)
        inner = np.minimum(dx[None, :], dy[:, None])  # distance to the box edge
    else:
        ax, ay = (x1 - x0) / 2.0, (y1 - y0) / 2.0
        ecx, ecy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
        rr = np.sqrt(((xs[None, :] - ecx) / ax) ** 2 + ((ys[:, None] - ecy) / ay) ** 2)
        inner = (1.0 - rr) * min(ax, ay)  # approximate distance inside the ellipse
    val = np.clip(inner / fw, 0.0, 1.0) if soft else (inner > 0).astype(np.float64)
    mask = np.zeros((h, w), dtype=np.uint8)
    mask[y0:y1, x0:x1] = np.round(val * 255).astype(np.uint8)
    return box, mask


@dataclass
class Framed:
    """An object's model frame: the crop plus everything needed to map results back."""

    image: np.ndarray  # uint8 (size, size, 3)
    object_mask: np.ndarray  # float32 (size, size): the object's coverage in the frame
    selection_mask: np.ndarray  # float32 (size, size) 0..1
    box: tuple[int, int, int, int]
    framing: BoxFraming  # bound to box
    center: tuple[float, float]  # object centre in frame units
    radius: float  # object radius in frame units (radius / frame side)
    attrs: dict[str, str | None]  # object attrs + the size the frame implies (None if none)


def framed_attrs(
    scene: Scene, index: int, box: Sequence[float], spec: WorldSpec = WORLD_SPEC
) -> dict[str, str | None]:
    """The object's attrs plus the ``size`` its radius has in the frame of ``box``."""
    obj = scene.objects[index]
    framing = BoxFraming(spec.framing_factor).fit(box)
    rho = obj.radius / framing.frame_rect()[2]
    return {**obj.attrs, "size": spec.size_for_radius(rho)}


def frame_of(
    scene: Scene,
    index: int,
    looseness: Looseness = "tight",
    size: int = WORLD_SPEC.frame_size,
    kind: Literal["rect", "ellipse"] = "rect",
    rng: np.random.Generator | None = None,
    spec: WorldSpec = WORLD_SPEC,
) -> Framed:
    """Select object ``index`` as an evaluator would and cut its model frame."""
    box, sel = selection_for(scene, index, looseness, True, kind, rng, spec=spec)
    framing = BoxFraming(spec.framing_factor).fit(box)
    rect = framing.frame_rect()
    obj = scene.objects[index]
    img = crop_frame(scene.image, rect, size)
    omask = crop_frame((obj.mask * 255).astype(np.uint8), rect, size).astype(np.float32) / 255
    smask = crop_frame(sel, rect, size).astype(np.float32) / 255
    c = framing.to_frame(np.array(obj.center))
    return Framed(
        image=img,
        object_mask=omask,
        selection_mask=smask,
        box=box,
        framing=framing,
        center=(float(c[0]), float(c[1])),
        radius=obj.radius / rect[2],
        attrs=framed_attrs(scene, index, box, spec),
    )
