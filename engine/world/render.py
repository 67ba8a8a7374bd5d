"""Seeded, vectorised renderer of the generator world (one centred object per frame).

Geometry: every shape is an intersection ("need all") or a k-of-n vote of half-planes, so a
whole batch is evaluated with a handful of numpy broadcasts. Anti-aliasing is true
supersampling (``spec.supersample``² samples per pixel), but only on pixels within one pixel
of an edge: interior and exterior pixels are exactly 1 or 0, so the result equals full
supersampling at a fraction of the cost (``tests/test_world.py`` checks the equality).

Appearance: object and background colours are drawn from their HSV regions (biased to the
centre), then a slight linear brightness gradient (kept inside the region's value range)
and luminance + chroma noise are added.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.world.color import classify_rgb, classify_rgb_array, hsv_to_rgb
from engine.world.spec import WORLD_SPEC, HsvRegion, WorldSpec

__all__ = [
    "Geometry",
    "classify_rgb",
    "classify_rgb_array",
    "coverage",
    "object_geometry",
    "render_batch",
    "render_edited",
    "render_frame",
    "sample_attrs",
    "sample_hsv",
]

# A pixel's square lies within sqrt(2)/2 of its centre, and the approximate distance never
# exceeds the true one, so pixels farther than this are entirely inside or outside.
_EDGE_BAND_PX = 0.7072


# --------------------------------------------------------------------------------------
# Geometry
# --------------------------------------------------------------------------------------
@dataclass
class Geometry:
    """Half-plane description of N objects in pixel coordinates (x right, y down).

    ``lines[i, k] = (nx, ny, b)``: pixel centre p is on the inside of line k iff
    ``nx*px + ny*py - b <= 0`` (unit normals, so the value is a distance in pixels). Object
    i is inside where at least ``need[i]`` of its ``n_lines[i]`` lines say inside; unused
    line slots hold an always-inside line. Circles use ``circle`` (cx, cy, r) instead.
    """

    shape_ids: np.ndarray  # (N,) int
    lines: np.ndarray  # (N, 5, 3) float64
    need: np.ndarray  # (N,) int
    circle: np.ndarray  # (N, 3) float64: cx, cy, r (only used where is_circle)
    is_circle: np.ndarray  # (N,) bool
    bbox: np.ndarray  # (N, 4) float64: x0, y0, x1, y1 (exact, continuous)

    def __len__(self) -> int:
        return len(self.shape_ids)

    def shifted(self, dx: float, dy: float) -> Geometry:
        """The same objects in a coordinate system whose origin is at (dx, dy)."""
        lines = self.lines.copy()
        lines[:, :, 2] -= lines[:, :, 0] * dx + lines[:, :, 1] * dy
        circle = self.circle.copy()
        circle[:, 0] -= dx
        circle[:, 1] -= dy
        bbox = self.bbox - np.array([dx, dy, dx, dy])
        return Geometry(self.shape_ids, lines, self.need, circle, self.is_circle, bbox)


def _shape_table() -> dict[str, tuple[int, float, float, int]]:
    """shape -> (vertex count, base angle, half-plane angle offset, need).

    The star is the regular pentagram, so its inner radius (``spec.star_inner_ratio``) is
    implied by the line construction rather than a free parameter.
    """
    return {
        "circle": (0, 0.0, 0.0, 0),
        # Square: vertices at ±45°, so rotation 0 is axis-aligned.
        "square": (4, -np.pi / 4, np.pi / 4, 4),
        # Triangle and star: rotation 0 points up (y grows downwards).
        "triangle": (3, -np.pi / 2, np.pi / 3, 3),
        # Regular pentagram = points inside at least 4 of the 5 lines through vertex k and
        # k+2; those lines sit at distance cos(72°) with normals at vertex angle + 72°.
        "star": (5, -np.pi / 2, 2 * np.pi / 5, 4),
    }


def object_geometry(
    shapes: Sequence[str] | np.ndarray,
    rotation_deg: np.ndarray | Sequence[float] | float,
    cx: np.ndarray | Sequence[float] | float,
    cy: np.ndarray | Sequence[float] | float,
    radius: np.ndarray | Sequence[float] | float,
    spec: WorldSpec = WORLD_SPEC,
) -> Geometry:
    """Geometry of objects whose bbox centre is (cx, cy) and bbox half-longer-side is radius."""
    shape_names = [str(s) for s in np.atleast_1d(np.asarray(shapes))]
    n = len(shape_names)
    rot = np.broadcast_to(np.asarray(rotation_deg, dtype=np.float64), (n,)) * np.pi / 180
    cx = np.broadcast_to(np.asarray(cx, dtype=np.float64), (n,))
    cy = np.broadcast_to(np.asarray(cy, dtype=np.float64), (n,))
    radius = np.broadcast_to(np.asarray(radius, dtype=np.float64), (n,))
    table = _shape_table()
    shape_ids = np.array([spec.shapes.index(s) for s in shape_names], dtype=np.int64)
    lines = np.zeros((n, 5, 3))
    lines[:, :, 2] = 1e9  # always-inside filler
    need = np.zeros(n, dtype=np.int64)
    circle = np.stack([cx, cy, radius], axis=-1)
    is_circle = np.zeros(n, dtype=bool)
    bbox = np.stack([cx - radius, cy - radius, cx + radius, cy + radius], axis=-1)
    for name, (nv, base, delta, k_need) in table.items():
        sel = np.array([s == name for s in shape_names], dtype=bool)
        if not sel.any():
            continue
        if nv == 0:
            is_circle[sel] = True
            continue
        phi = rot[sel, None] + base + 2 * np.pi * np.arange(nv)[None, :] / nv  # (m, nv)
        vx, vy = np.cos(phi), np.sin(phi)
        minx, maxx, miny, maxy = vx.min(1), vx.max(1), vy.min(1), vy.max(1)
        scale = 2 * radius[sel] / np.maximum(maxx - minx, maxy - miny)
        # Polygon centre (circumcentre) so that the bbox centre lands on (cx, cy).
        ox = cx[sel] - scale * (minx + maxx) / 2
        oy = cy[sel] - scale * (miny + maxy) / 2
        nx, ny = np.cos(phi + delta), np.sin(phi + delta)
        b = nx * ox[:, None] + ny * oy[:, None] + scale[:, None] * np.cos(delta)
        lines[sel, :nv, 0] = nx
        lines[sel, :nv, 1] = ny
        lines[sel, :nv, 2] = b
        need[sel] = k_need + (5 - nv)  # filler lines always vote inside
        bbox[sel] = np.stack(
            [ox + scale * minx, oy + scale * miny, ox + scale * maxx, oy + scale * maxy], -1
        )
    return Geometry(shape_ids, lines, need, circle, is_circle, bbox)


def _signed_distance(geom: Geometry, idx: np.ndarray, xs: np.ndarray, ys: np.ndarray):
    """Approximate signed distance (pixels, negative inside) on the grid for objects idx.

    Exact inside convex shapes; elsewhere a lower bound of the true distance, which is all
    the edge-band test needs (1-Lipschitz half-plane functions).
    """
    h, w = len(ys), len(xs)
    out = np.empty((len(idx), h, w), dtype=np.float32)
    xs32 = xs.astype(np.float32)
    ys32 = ys.astype(np.float32)
    circ = geom.is_circle[idx]
    if circ.any():
        c = geom.circle[idx[circ]].astype(np.float32)
        dx = xs32[None, None, :] - c[:, 0, None, None]
        dy = ys32[None, :, None] - c[:, 1, None, None]
        out[circ] = np.sqrt(dx * dx + dy * dy) - c[:, 2, None, None]
    poly = ~circ
    if poly.any():
        pidx = idx[poly]
        ln = geom.lines[pidx].astype(np.float32)  # (m, 5, 3)
        e = (
            ln[:, :, 0, None, None] * xs32[None, None, None, :]
            + ln[:, :, 1, None, None] * ys32[None, None, :, None]
            - ln[:, :, 2, None, None]
        )  # (m, 5, h, w)
        kth = geom.need[pidx] - 1  # inside iff the need-th smallest value is <= 0
        res = np.empty((len(pidx), h, w), dtype=np.float32)
        for k in np.unique(kth):
            sel = kth == k
            if k == e.shape[1] - 1:  # convex: all lines must agree
                res[sel] = e[sel].max(axis=1)
            else:
                res[sel] = np.partition(e[sel], int(k), axis=1)[:, int(k)]
        out[poly] = res
    return out


def _inside_points(geom: Geometry, f: np.ndarray, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """Exact inside test of points (M, S) belonging to objects f (M,)."""
    inside = np.empty(px.shape, dtype=bool)
    circ = geom.is_circle[f]
    if circ.any():
        c = geom.circle[f[circ]]
        dx = px[circ] - c[:, 0, None]
        dy = py[circ] - c[:, 1, None]
        inside[circ] = dx * dx + dy * dy <= (c[:, 2, None] ** 2)
    poly = ~circ
    if poly.any():
        # float64: sample points can sit within float32 rounding of an edge.
        ln = geom.lines[f[poly]]  # (m, 5, 3)
        e = (
            ln[:, :, 0, None] * px[poly][:, None, :]
            + ln[:, :, 1, None] * py[poly][:, None, :]
            - ln[:, :, 2, None]
        )
        inside[poly] = (e <= 0).sum(axis=1) >= geom.need[f[poly], None]
    return inside


def coverage(
    geom: Geometry,
    height: int,
    width: int,
    supersample: int = WORLD_SPEC.supersample,
    full: bool = False,
) -> np.ndarray:
    """Anti-aliased coverage (N, height, width) float32 of each object on a pixel grid.

    Pixel (i, j) covers [j, j+1) x [i, i+1). Edge pixels get ``supersample``² samples;
    ``full=True`` supersamples every pixel (slow; the reference the fast path must match).
    """
    n = len(geom)
    xs = np.arange(width, dtype=np.float64) + 0.5
    ys = np.arange(height, dtype=np.float64) + 0.5
    if full:
        d = np.zeros((n, height, width), dtype=np.float32)
        band = np.ones_like(d, dtype=bool)
    else:
        d = _signed_distance(geom, np.arange(n), xs, ys)
        band = np.abs(d) < _EDGE_BAND_PX
    cov = (d <= 0).astype(np.float32)
    f, i, j = np.nonzero(band)
    if len(f):
        o = (np.arange(supersample) + 0.5) / supersample - 0.5
        ox, oy = np.meshgrid(o, o)
        px = xs[j][:, None] + ox.ravel()[None, :]
        py = ys[i][:, None] + oy.ravel()[None, :]
        # Chunk the edge pixels to bound memory on large canvases.
        step = 65536
        vals = np.empty(len(f), dtype=np.float32)
        for s in range(0, len(f), step):
            sl = slice(s, s + step)
            vals[sl] = _inside_points(geom, f[sl], px[sl], py[sl]).mean(axis=1)
        cov[f, i, j] = vals
    return cov


# --------------------------------------------------------------------------------------
# Appearance
# --------------------------------------------------------------------------------------
def sample_hsv(
    rng: np.random.Generator, region: HsvRegion, n: int, spec: WorldSpec = WORLD_SPEC
) -> np.ndarray:
    """n HSV triples inside ``region``: shrunk by spec.sample_shrink, Beta-biased to centre."""
    c = spec.sample_concentration
    k = spec.sample_shrink

    def axis(lohi: tuple[float, float]) -> np.ndarray:
        lo, hi = lohi
        w = hi - lo
        return lo + k * w + (1 - 2 * k) * w * rng.beta(c, c, size=n)

    hue = rng.uniform(0.0, 360.0, size=n) if region.h is None else axis(region.h) % 360.0
    return np.stack([hue, axis(region.s), axis(region.v)], axis=-1)


def _gradient_amplitude(
    rng: np.random.Generator, v: np.ndarray, v_range: np.ndarray, spec: WorldSpec
) -> np.ndarray:
    """Relative brightness amplitude, capped so v*(1±g) stays inside the region's value range."""
    g = rng.uniform(0.0, spec.gradient_max, size=v.shape)
    v = np.maximum(v, 1e-3)
    room = np.minimum(1.0 - v_range[..., 0] / v, v_range[..., 1] / v - 1.0)
    return np.clip(np.minimum(g, 0.9 * room), 0.0, None)


def _noise(
    rng: np.random.Generator, shape: tuple[int, ...], luma: np.ndarray, chroma: np.ndarray
) -> np.ndarray:
    """Shared-channel (luma) plus per-channel (chroma) Gaussian noise, (N, H, W, 3) float32."""
    n = shape[0]
    bshape = (n,) + (1,) * (len(shape) - 1)
    out = rng.standard_normal(size=(*shape, 3), dtype=np.float32) * chroma.reshape(
        *bshape, 1
    ).astype(np.float32)
    out += rng.standard_normal(size=(*shape, 1), dtype=np.float32) * luma.reshape(
        *bshape, 1
    ).astype(np.float32)
    return out


# --------------------------------------------------------------------------------------
# Frames
# --------------------------------------------------------------------------------------
def sample_attrs(rng: np.random.Generator, spec: WorldSpec = WORLD_SPEC) -> dict[str, str]:
    """Uniformly random attributes: keys exactly shape, color, size, background."""
    return {
        "shape": spec.shapes[int(rng.integers(len(spec.shapes)))],
        "color": spec.colors[int(rng.integers(len(spec.colors)))],
        "size": spec.sizes[int(rng.integers(len(spec.sizes)))],
        "background": spec.backgrounds[int(rng.integers(len(spec.backgrounds)))],
    }


def _region_v(regions: Mapping[str, HsvRegion], names: Sequence[str]) -> np.ndarray:
    return np.array([regions[n].v for n in names], dtype=np.float64)


def _sample_params(
    attrs: Sequence[Mapping[str, str]], rng: np.random.Generator, spec: WorldSpec
) -> dict[str, Any]:
    """All continuous nuisance parameters for frames with the given attributes (vectorised)."""
    n = len(attrs)
    shapes = np.array([a["shape"] for a in attrs])
    colors = np.array([a["color"] for a in attrs])
    sizes = np.array([a["size"] for a in attrs])
    bgs = np.array([a["background"] for a in attrs])
    radius = np.empty(n)
    for name, (lo, hi) in spec.size_bands.items():
        sel = sizes == name
        radius[sel] = rng.uniform(lo, hi, size=int(sel.sum()))
    j = spec.center_jitter
    center = 0.5 + rng.uniform(-j, j, size=(n, 2))
    period = np.array([spec.rotation_periods[s] for s in shapes])
    rotation = rng.uniform(0.0, 1.0, size=n) * period
    obj_hsv = np.empty((n, 3))
    bg_hsv = np.empty((n, 3))
    for name in spec.colors:
        sel = colors == name
        if sel.any():
            obj_hsv[sel] = sample_hsv(rng, spec.color_regions[name], int(sel.sum()), spec)
    for name in spec.backgrounds:
        sel = bgs == name
        if sel.any():
            bg_hsv[sel] = sample_hsv(rng, spec.background_regions[name], int(sel.sum()), spec)
    obj_grad = _gradient_amplitude(
        rng, obj_hsv[:, 2], _region_v(spec.color_regions, colors), spec
    )
    bg_grad = _gradient_amplitude(
        rng, bg_hsv[:, 2], _region_v(spec.background_regions, bgs), spec
    )
    return {
        "shape": shapes,
        "radius": radius,  # fraction of frame side (half the bbox's longer side)
        "center": center,  # fraction of frame side (bbox centre), x then y
        "rotation": rotation,  # degrees
        "obj_hsv": obj_hsv,
        "bg_hsv": bg_hsv,
        "obj_rgb": hsv_to_rgb(obj_hsv),
        "bg_rgb": hsv_to_rgb(bg_hsv),
        "obj_grad": obj_grad,
        "obj_grad_dir": rng.uniform(0, 2 * np.pi, size=n),
        "bg_grad": bg_grad,
        "bg_grad_dir": rng.uniform(0, 2 * np.pi, size=n),
        "noise_luma": rng.uniform(*spec.noise_luma_sigma, size=n),
        "noise_chroma": rng.uniform(*spec.noise_chroma_sigma, size=n),
    }


def _render_params(
    p: Mapping[str, Any], sl: slice, size: int, rng: np.random.Generator, spec: WorldSpec
) -> tuple[np.ndarray, np.ndarray]:
    radius = p["radius"][sl] * size
    center = p["center"][sl] * size
    geom = object_geometry(
        p["shape"][sl], p["rotation"][sl], center[:, 0], center[:, 1], radius, spec
    )
    alpha = coverage(geom, size, size, spec.supersample)
    n = len(alpha)
    xs = np.arange(size, dtype=np.float32) + 0.5
    # Background gradient across the frame, object gradient across the object.
    half_diag = np.float32(size / np.sqrt(2.0))
    bdir = p["bg_grad_dir"][sl]
    u_bg = (
        (xs[None, None, :] - size / 2) * np.cos(bdir)[:, None, None].astype(np.float32)
        + (xs[None, :, None] - size / 2) * np.sin(bdir)[:, None, None].astype(np.float32)
    ) / half_diag
    f_bg = 1.0 + p["bg_grad"][sl][:, None, None].astype(np.float32) * u_bg
    odir = p["obj_grad_dir"][sl]
    u_obj = (
        (xs[None, None, :] - center[:, 0, None, None]) * np.cos(odir)[:, None, None]
        + (xs[None, :, None] - center[:, 1, None, None]) * np.sin(odir)[:, None, None]
    ) / radius[:, None, None]
    f_obj = 1.0 + p["obj_grad"][sl][:, None, None] * np.clip(u_obj, -1.0, 1.0)
    f_obj = f_obj.astype(np.float32)
    a = alpha[..., None]
    img = p["bg_rgb"][sl, None, None, :].astype(np.float32) * (f_bg[..., None] * (1.0 - a))
    img += p["obj_rgb"][sl, None, None, :].astype(np.float32) * (f_obj[..., None] * a)
    img += _noise(rng, (n, size, size), p["noise_luma"][sl], p["noise_chroma"][sl])
    return np.clip(img + 0.5, 0, 255).astype(np.uint8), alpha


def _complete_attrs(
    attrs: Mapping[str, str] | None, rng: np.random.Generator, spec: WorldSpec
) -> dict[str, str]:
    full = sample_attrs(rng, spec)
    if attrs:
        unknown = set(attrs) - set(full)
        if unknown:
            raise KeyError(f"unknown attribute keys {sorted(unknown)}")
        full.update(attrs)
    return full


def render_frame(
    attrs: Mapping[str, str] | None,
    rng: np.random.Generator,
    size: int = WORLD_SPEC.frame_size,
    spec: WorldSpec = WORLD_SPEC,
    return_params: bool = False,
) -> Any:
    """Render one frame: ``(rgb uint8 [size,size,3], object_mask float32 [size,size])``.

    Missing attributes are sampled from ``rng``. With ``return_params`` a third element holds
    the continuous ground truth (radius and centre as fractions of the side, rotation, RGBs).
    """
    full = _complete_attrs(attrs, rng, spec)
    params = _sample_params([full], rng, spec)
    img, mask = _render_params(params, slice(0, 1), size, rng, spec)
    if return_params:
        one = {k: (v[0] if isinstance(v, np.ndarray) else v) for k, v in params.items()}
        return img[0], mask[0], {**full, **one}
    return img[0], mask[0]


def _render_chunked(
    params: Mapping[str, Any], n: int, size: int, rng: np.random.Generator, spec: WorldSpec,
    chunk: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Render all ``n`` frames of ``params``, ``chunk`` at a time (bounded memory)."""
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    masks = np.empty((n, size, size), dtype=np.float32)
    for s in range(0, n, chunk):
        sl = slice(s, min(n, s + chunk))
        images[sl], masks[sl] = _render_params(params, sl, size, rng, spec)
    return images, masks


def render_batch(
    n: int,
    seed: int,
    size: int = WORLD_SPEC.frame_size,
    spec: WorldSpec = WORLD_SPEC,
    attrs: Sequence[Mapping[str, str]] | None = None,
    return_params: bool = False,
    chunk: int = 128,
) -> Any:
    """Render n frames: ``(images uint8 [n,H,W,3], masks float32 [n,H,W], attrs list)``.

    Deterministic in (n, seed, size, attrs). Attributes are uniform and independent unless
    ``attrs`` (a list of n possibly partial dicts) fixes them. With ``return_params`` a fourth
    element holds the per-frame continuous parameters as arrays.
    """
    rng = np.random.default_rng(seed)
    idx = {
        "shape": rng.integers(len(spec.shapes), size=n),
        "color": rng.integers(len(spec.colors), size=n),
        "size": rng.integers(len(spec.sizes), size=n),
        "background": rng.integers(len(spec.backgrounds), size=n),
    }
    vocab = {
        "shape": spec.shapes,
        "color": spec.colors,
        "size": spec.sizes,
        "background": spec.backgrounds,
    }
    attr_list = [{k: vocab[k][int(idx[k][i])] for k in vocab} for i in range(n)]
    if attrs is not None:
        if len(attrs) != n:
            raise ValueError("attrs must have n entries")
        for full, given in zip(attr_list, attrs, strict=True):
            full.update(given)
    params = _sample_params(attr_list, rng, spec)
    images, masks = _render_chunked(params, n, size, rng, spec, chunk)
    if return_params:
        return images, masks, attr_list, params
    return images, masks, attr_list


# Which continuous parameters belong to which attribute: changing the attribute redraws
# these and keeps every other one (centre, gradient directions, noise levels, other shades).
_ATTRIBUTE_PARAMS: dict[str, tuple[str, ...]] = {
    "shape": ("rotation",),
    "color": ("obj_hsv", "obj_rgb", "obj_grad"),
    "size": ("radius",),
    "background": ("bg_hsv", "bg_rgb", "bg_grad"),
}


def render_edited(
    params: Mapping[str, Any],
    attrs: Sequence[Mapping[str, str]],
    changes: Sequence[Mapping[str, str]],
    seed: int,
    size: int = WORLD_SPEC.frame_size,
    spec: WorldSpec = WORLD_SPEC,
    chunk: int = 128,
) -> tuple[np.ndarray, np.ndarray, list[dict[str, str]]]:
    """The frames of ``render_batch(..., return_params=True)`` with some attributes changed:
    ground-truth edits ("the same object, but green").

    ``changes[i]`` is a partial attribute dict for frame i (empty: the frame again, with new
    noise). Only the parameters of a changed attribute are redrawn (from ``seed``); the
    object keeps its place, its gradient directions and, unless the shape changes, its
    rotation. Returns ``(images, masks, attrs)`` like :func:`render_batch`.
    """
    if len(changes) != len(attrs):
        raise ValueError("changes must have one entry per frame")
    unknown = {k for c in changes for k in c} - set(_ATTRIBUTE_PARAMS)
    if unknown:
        raise KeyError(f"unknown attribute keys {sorted(unknown)}")
    rng = np.random.default_rng(seed)
    edited = [{**a, **c} for a, c in zip(attrs, changes, strict=True)]
    fresh = _sample_params(edited, rng, spec)
    out = {k: np.array(v, copy=True) for k, v in params.items()}
    out["shape"] = fresh["shape"]
    for key, fields in _ATTRIBUTE_PARAMS.items():
        changed = np.array([e[key] != a[key] for e, a in zip(edited, attrs, strict=True)])
        for field in fields:
            out[field][changed] = fresh[field][changed]
    images, masks = _render_chunked(out, len(attrs), size, rng, spec, chunk)
    return images, masks, edited
