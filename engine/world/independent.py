"""An independent test set: the same world drawn by separate, plain code.

Nothing here uses the main renderer's geometry, colour sampling or compositing: shapes are
Pillow ``ImageDraw`` primitives with hard edges (no supersampling), colours come from named
web colours inside each region or uniformly from the whole region (not the renderer's
centre-biased draw), some objects carry a darker outline of the same colour, and there is
no gradient, noise or jitter model beyond the spec's centre jitter. Only the *definitions*
are shared: vocabulary, HSV regions, size bands, the radius convention (half the bbox's
longer side) and, for scenes, the spacing rule, so that ground truth means the same thing.
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw

from engine.world.scenes import Scene, SceneObject, place_objects
from engine.world.spec import WORLD_SPEC, HsvRegion, WorldSpec

__all__ = [
    "NAMED_COLORS",
    "independent_colors",
    "render_independent_frame",
    "render_independent_scene",
]

# Web (CSS) colours a person would give the name; each lies inside the name's HSV region.
NAMED_COLORS: dict[str, tuple[tuple[int, int, int], ...]] = {
    "red": ((255, 0, 0), (220, 20, 60), (178, 34, 34), (139, 0, 0), (200, 16, 46)),
    "orange": ((255, 165, 0), (255, 140, 0), (255, 127, 0), (237, 145, 33)),
    "yellow": ((255, 255, 0), (255, 215, 0), (250, 218, 94), (255, 239, 0)),
    "green": ((0, 128, 0), (34, 139, 34), (50, 205, 50), (0, 255, 0), (46, 139, 87),
              (0, 100, 0)),
    "blue": ((0, 0, 255), (65, 105, 225), (30, 144, 255), (0, 0, 205), (0, 0, 128),
             (70, 130, 180)),
    "purple": ((128, 0, 128), (148, 0, 211), (138, 43, 226), (102, 51, 153), (75, 0, 130),
               (153, 50, 204)),
    "white": ((255, 255, 255), (255, 250, 250), (248, 248, 255), (245, 245, 245),
              (255, 255, 240)),
    "black": ((0, 0, 0), (20, 20, 20), (28, 28, 36), (35, 30, 25)),
}


def _uniform_in(rng: np.random.Generator, region: HsvRegion) -> tuple[int, int, int]:
    """Uniform over the whole region (hue, saturation, value axes independently)."""
    for _ in range(100):
        h = rng.uniform(0, 360) if region.h is None else rng.uniform(*region.h) % 360
        s = rng.uniform(*region.s)
        v = rng.uniform(*region.v)
        r, g, b = colorsys.hsv_to_rgb(h / 360.0, s, v)
        rgb = (round(r * 255), round(g * 255), round(b * 255))
        if _inside(rgb, region):  # rounding to integers can step over a bound
            return rgb
    raise RuntimeError("could not sample inside region")


def _inside(rgb: Sequence[int], region: HsvRegion) -> bool:
    h, s, v = colorsys.rgb_to_hsv(*(c / 255.0 for c in rgb))
    h *= 360.0
    if not (region.s[0] <= s <= region.s[1] and region.v[0] <= v <= region.v[1]):
        return False
    if region.h is None:
        return True
    return (h - region.h[0]) % 360.0 <= region.h[1] - region.h[0]


def _darker(rgb: Sequence[int], region: HsvRegion) -> tuple[int, int, int]:
    """A darker shade of the same hue that stays inside the region (same colour name)."""
    h, s, v = colorsys.rgb_to_hsv(*(c / 255.0 for c in rgb))
    for factor in (0.72, 0.8, 0.88, 0.95, 1.0):
        v2 = max(region.v[0], v * factor)
        r, g, b = colorsys.hsv_to_rgb(h, s, v2)
        out = (round(r * 255), round(g * 255), round(b * 255))
        if _inside(out, region):
            return out
    return tuple(int(c) for c in rgb)  # type: ignore[return-value]


def independent_colors(
    rng: np.random.Generator, color: str, spec: WorldSpec = WORLD_SPEC
) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """(fill, outline) RGB for a colour name: half named web colours, half uniform."""
    region = spec.color_regions[color]
    if rng.random() < 0.5:
        options = NAMED_COLORS[color]
        fill = options[int(rng.integers(len(options)))]
    else:
        fill = _uniform_in(rng, region)
    return fill, _darker(fill, region)


def _outline_points(shape: str, cx: float, cy: float, r: float, rot_deg: float):
    """Vertices of a polygonal shape, scaled so its bbox has half-longer-side r, centred."""
    a0 = math.radians(rot_deg)
    if shape == "square":
        pts = [(math.cos(a0 + math.pi / 4 + k * math.pi / 2),
                math.sin(a0 + math.pi / 4 + k * math.pi / 2)) for k in range(4)]
    elif shape == "triangle":
        pts = [(math.sin(a0 + 2 * math.pi * k / 3), -math.cos(a0 + 2 * math.pi * k / 3))
               for k in range(3)]
    elif shape == "star":
        inner = math.sin(math.radians(18)) / math.sin(math.radians(54))
        pts = []
        for k in range(10):
            rad = 1.0 if k % 2 == 0 else inner
            ang = a0 + math.pi * k / 5
            pts.append((rad * math.sin(ang), -rad * math.cos(ang)))
    else:
        raise ValueError(shape)
    xs = [p[0] for p in pts]
    ys = [p[1] for p in pts]
    scale = 2 * r / max(max(xs) - min(xs), max(ys) - min(ys))
    mx, my = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2
    return [(cx + (x - mx) * scale, cy + (y - my) * scale) for x, y in pts]


def _draw(
    draw: ImageDraw.ImageDraw,
    shape: str,
    cx: float,
    cy: float,
    r: float,
    rot: float,
    fill,
    outline,
    width: int,
) -> None:
    # Continuous coordinates put pixel centres at +0.5; Pillow puts them at integers.
    cx, cy = cx - 0.5, cy - 0.5
    if shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill, outline=outline, width=width)
    else:
        pts = _outline_points(shape, cx, cy, r, rot)
        draw.polygon(pts, fill=fill, outline=outline, width=width)


def _pick(rng: np.random.Generator, values: Sequence[str]) -> str:
    return values[int(rng.integers(len(values)))]


def _object(
    rng: np.random.Generator, attrs: Mapping[str, str], spec: WorldSpec
) -> dict[str, object]:
    fill, outline = independent_colors(rng, attrs["color"], spec)
    has_outline = rng.random() < 0.4
    return {
        "rotation": float(rng.uniform(0, 360)) if attrs["shape"] != "circle" else 0.0,
        "fill": fill,
        "outline": outline if has_outline else None,
        "outline_frac": float(rng.uniform(0.06, 0.12)) if has_outline else 0.0,
    }


def render_independent_frame(
    rng: np.random.Generator,
    size: int = WORLD_SPEC.frame_size,
    attrs: Mapping[str, str] | None = None,
    spec: WorldSpec = WORLD_SPEC,
) -> tuple[np.ndarray, np.ndarray, dict[str, object]]:
    """One generator-style frame: ``(rgb uint8, mask float32 0/1, info)``.

    ``info`` has the attrs (keys shape, color, size, background) plus the ground truth:
    ``center`` and ``radius`` as fractions of the side, ``fill``/``outline``/``bg`` RGBs.
    """
    full = {
        "shape": _pick(rng, spec.shapes),
        "color": _pick(rng, spec.colors),
        "size": _pick(rng, spec.sizes),
        "background": _pick(rng, spec.backgrounds),
    }
    full.update(attrs or {})
    lo, hi = spec.size_bands[full["size"]]
    radius = float(rng.uniform(lo, hi))
    center = (0.5 + float(rng.uniform(-spec.center_jitter, spec.center_jitter)),
              0.5 + float(rng.uniform(-spec.center_jitter, spec.center_jitter)))
    bg = _uniform_in(rng, spec.background_regions[full["background"]])
    obj = _object(rng, full, spec)
    img = Image.new("RGB", (size, size), bg)
    mask = Image.new("L", (size, size), 0)
    r_px = radius * size
    width = max(1, round(obj["outline_frac"] * r_px)) if obj["outline"] else 0  # type: ignore
    args = (full["shape"], center[0] * size, center[1] * size, r_px, obj["rotation"])
    _draw(ImageDraw.Draw(img), *args, obj["fill"], obj["outline"], width)  # type: ignore
    _draw(ImageDraw.Draw(mask), *args, 255, 255 if width else None, width)  # type: ignore
    info: dict[str, object] = {**full, "center": center, "radius": radius, "bg": bg, **obj}
    return np.asarray(img), (np.asarray(mask) > 127).astype(np.float32), info


def render_independent_scene(
    seed: int,
    width: int = 512,
    height: int = 512,
    n_objects: int = 3,
    objects: Sequence[Mapping[str, str]] | None = None,
    background: str | None = None,
    spec: WorldSpec = WORLD_SPEC,
) -> Scene:
    """A canvas scene drawn independently (flat background, hard edges, web colours).

    Placement follows the same spacing rule as ``render_scene`` so that selections and
    frames from ``engine.world.scenes`` apply unchanged.
    """
    rng = np.random.default_rng(seed)
    bg_name = background or _pick(rng, spec.backgrounds)
    bg = _uniform_in(rng, spec.background_regions[bg_name])
    img = Image.new("RGB", (width, height), bg)
    placements = place_objects(rng, width, height, n_objects, spec=spec)
    out: list[SceneObject] = []
    for k, (cx, cy, r) in enumerate(placements):
        attrs = {"shape": _pick(rng, spec.shapes), "color": _pick(rng, spec.colors)}
        if objects is not None:
            attrs.update({key: v for key, v in objects[k].items() if key in attrs})
        attrs["background"] = bg_name
        obj = _object(rng, attrs, spec)
        w = max(1, round(obj["outline_frac"] * r)) if obj["outline"] else 0  # type: ignore
        m = Image.new("L", (width, height), 0)
        args = (attrs["shape"], cx, cy, r, obj["rotation"])
        _draw(ImageDraw.Draw(img), *args, obj["fill"], obj["outline"], w)  # type: ignore
        _draw(ImageDraw.Draw(m), *args, 255, 255 if w else None, w)  # type: ignore
        mask = (np.asarray(m) > 127).astype(np.float32)
        out.append(
            SceneObject(
                attrs=attrs,
                center=(cx, cy),
                radius=r,
                bbox=(cx - r, cy - r, cx + r, cy + r) if attrs["shape"] == "circle"
                else _bbox(_outline_points(attrs["shape"], cx, cy, r, obj["rotation"])),
                mask=mask,
                rotation=float(obj["rotation"]),  # type: ignore[arg-type]
                rgb=tuple(float(c) for c in obj["fill"]),  # type: ignore[arg-type]
            )
        )
    return Scene(image=np.asarray(img).copy(), objects=out, background=bg_name,
                 background_rgb=tuple(float(c) for c in bg), seed=seed,  # type: ignore
                 meta={"independent": True})


def _bbox(pts: Sequence[tuple[float, float]]) -> tuple[float, float, float, float]:
    xs = [p[0] for p in pts]
    ys = [p[1] for p in pts]
    return (min(xs), min(ys), max(xs), max(ys))
