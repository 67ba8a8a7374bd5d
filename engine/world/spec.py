"""The synthetic world's vocabulary and every number that defines it, in one JSON-able spec.

``WORLD_SPEC`` is what the demo pack's manifest records; renderer, framing, scenes, captions,
the independent test set and the judge all read their numbers from it.

Conventions (also written into the manifest by ``WorldSpec.to_dict``):

* Colours are sRGB 0..255. HSV uses hue in degrees, saturation and value in 0..1. A hue range
  ``(lo, hi)`` with ``lo < 0`` wraps through 0 (red is ``(-15, 10)``); ``None`` means any hue.
* An object's *centre* is the centre of its axis-aligned bounding box and its *radius* is
  half the longer side of that box (its "half-extent"). This, not the circumradius, is what
  a selection box sees, so the framing rule maps box size to frame size exactly for every
  shape and rotation (a circumradius would vary by up to 1.41x against the box).
* A selection with margin ``m`` is the object's tight box grown on every side by
  ``m * L`` where ``L`` is the box's longer side. Framing (``BoxFraming``) takes a square
  crop centred on the selection box with side ``longer_side / framing_factor``. Hence the
  object's radius in the frame is ``framing_factor / (2 * (1 + 2m))`` of the frame side.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ATTR_KEYS",
    "BACKGROUNDS",
    "BACKGROUND_REGIONS",
    "COLORS",
    "COLOR_REGIONS",
    "HSV_REGIONS",
    "SHAPES",
    "SIZES",
    "SIZE_BANDS",
    "SPLITS",
    "WORLD_SPEC",
    "HsvRegion",
    "WorldSpec",
    "split_seed",
]

ATTR_KEYS: tuple[str, ...] = ("shape", "color", "size", "background")

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star")
COLORS: tuple[str, ...] = ("red", "orange", "yellow", "green", "blue", "purple", "white", "black")
# Mid-light tints and a mid grey. None shares a name (or a region) with an object colour, so a
# prompt's words say unambiguously which attribute they name ("a green star on mint").
BACKGROUNDS: tuple[str, ...] = ("beige", "grey", "mint", "pink")
SIZES: tuple[str, ...] = ("small", "large")


@dataclass(frozen=True)
class HsvRegion:
    """A box in HSV space: hue range in degrees (or None = any hue), saturation and value."""

    h: tuple[float, float] | None
    s: tuple[float, float]
    v: tuple[float, float]

    def center_hsv(self) -> tuple[float, float, float]:
        hue = 0.0 if self.h is None else ((self.h[0] + self.h[1]) / 2.0) % 360.0
        return (hue, (self.s[0] + self.s[1]) / 2.0, (self.v[0] + self.v[1]) / 2.0)

    def center_rgb(self) -> tuple[float, float, float]:
        from engine.world.color import hsv_to_rgb

        r, g, b = (float(c) for c in hsv_to_rgb(self.center_hsv()))
        return (r, g, b)

    def to_dict(self) -> dict[str, Any]:
        return {
            "h": None if self.h is None else list(self.h),
            "s": list(self.s),
            "v": list(self.v),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> HsvRegion:
        h = d.get("h")
        return cls(
            h=None if h is None else (float(h[0]), float(h[1])),
            s=(float(d["s"][0]), float(d["s"][1])),
            v=(float(d["v"][0]), float(d["v"][1])),
        )


# What a person would call each colour. Regions are disjoint and leave unnamed gaps
# (orange-red, chartreuse/cyan, blue-violet, magenta-pink, brown, olive, pastels, greys).
COLOR_REGIONS: dict[str, HsvRegion] = {
    "red": HsvRegion(h=(-15.0, 10.0), s=(0.65, 1.0), v=(0.50, 1.0)),
    "orange": HsvRegion(h=(18.0, 40.0), s=(0.70, 1.0), v=(0.75, 1.0)),
    "yellow": HsvRegion(h=(47.0, 64.0), s=(0.60, 1.0), v=(0.80, 1.0)),
    "green": HsvRegion(h=(90.0, 155.0), s=(0.60, 1.0), v=(0.35, 1.0)),
    "blue": HsvRegion(h=(195.0, 245.0), s=(0.55, 1.0), v=(0.40, 1.0)),
    "purple": HsvRegion(h=(258.0, 305.0), s=(0.45, 1.0), v=(0.35, 0.90)),
    "white": HsvRegion(h=None, s=(0.0, 0.08), v=(0.92, 1.0)),
    "black": HsvRegion(h=None, s=(0.0, 1.0), v=(0.0, 0.18)),
}

# Chosen so that every object-colour region stays at least 12 CIELAB ΔE76 from every
# background region (white/beige, white/mint and green/mint are the closest pairs), and at
# least 16 between the renderer's sampling cores. tests/test_world.py checks both.
BACKGROUND_REGIONS: dict[str, HsvRegion] = {
    "beige": HsvRegion(h=(28.0, 48.0), s=(0.18, 0.32), v=(0.70, 0.84)),
    "grey": HsvRegion(h=None, s=(0.0, 0.06), v=(0.42, 0.60)),
    "mint": HsvRegion(h=(130.0, 165.0), s=(0.18, 0.30), v=(0.68, 0.82)),
    "pink": HsvRegion(h=(-30.0, -5.0), s=(0.18, 0.30), v=(0.72, 0.85)),
}

HSV_REGIONS: dict[str, dict[str, HsvRegion]] = {
    "color": COLOR_REGIONS,
    "background": BACKGROUND_REGIONS,
}

# Object radius (half-extent) as a fraction of the frame side. Separated bands: nothing sits
# on the boundary, and a judge can call the size with a threshold anywhere in the gap.
SIZE_BANDS: dict[str, tuple[float, float]] = {"small": (0.16, 0.24), "large": (0.30, 0.40)}

# Rotational symmetry period in degrees; 0 = no rotation (circle).
ROTATION_PERIODS: dict[str, float] = {
    "circle": 0.0,
    "square": 90.0,
    "triangle": 120.0,
    "star": 72.0,
}


def _regions_to_dict(regions: Mapping[str, HsvRegion]) -> dict[str, Any]:
    return {k: r.to_dict() for k, r in regions.items()}


def _regions_from_dict(d: Mapping[str, Any]) -> dict[str, HsvRegion]:
    return {k: HsvRegion.from_dict(v) for k, v in d.items()}


@dataclass(frozen=True)
class WorldSpec:
    """Every number of the world. ``to_dict()`` is JSON-safe and goes into the manifest."""

    version: int = 1
    shapes: tuple[str, ...] = SHAPES
    colors: tuple[str, ...] = COLORS
    backgrounds: tuple[str, ...] = BACKGROUNDS
    sizes: tuple[str, ...] = SIZES
    color_regions: dict[str, HsvRegion] = field(default_factory=lambda: dict(COLOR_REGIONS))
    background_regions: dict[str, HsvRegion] = field(
        default_factory=lambda: dict(BACKGROUND_REGIONS)
    )
    # Generator frames.
    frame_size: int = 64
    size_bands: dict[str, tuple[float, float]] = field(default_factory=lambda: dict(SIZE_BANDS))
    center_jitter: float = 0.04  # uniform, per axis, fraction of the frame side
    rotation_periods: dict[str, float] = field(default_factory=lambda: dict(ROTATION_PERIODS))
    star_inner_ratio: float = 0.381966  # regular pentagram: cos 72° / cos 36°
    supersample: int = 4  # samples per pixel axis on edge pixels (interior pixels are exact)
    # Appearance variation. Colours are drawn inside their region, shrunk by
    # ``sample_shrink`` of its width on each side, from a Beta(c, c) per HSV axis so they
    # cluster near the region's centre.
    sample_shrink: float = 0.15
    sample_concentration: float = 2.5
    gradient_max: float = 0.08  # max relative brightness change across object/background
    noise_luma_sigma: tuple[float, float] = (0.5, 2.5)  # 0..255 units, shared by channels
    noise_chroma_sigma: tuple[float, float] = (0.0, 1.0)  # 0..255 units, per channel
    # Framing: frame side = selection box longer side / framing_factor.
    framing_factor: float = 0.75
    tight_margin: float = 0.05  # nominal "tight" selection -> framed radius 0.341 (large)
    loose_margin: float = 0.45  # nominal "loose" selection -> framed radius 0.197 (small)
    tight_margin_range: tuple[float, float] = (0.0, 0.12)  # -> framed radius 0.302..0.375
    loose_margin_range: tuple[float, float] = (0.30, 0.62)  # -> framed radius 0.167..0.234
    # Canvas scenes.
    min_object_px: float = 24.0  # smallest object extent (2 x radius) on a canvas
    scene_gap_px: float = 2.0  # extra clearance between a frame and any other object
    split_scheme: str = "seed = 4 * index + {train: 0, val: 1, test: 2, independent: 3}"

    def __hash__(self) -> int:  # dict fields: hash the canonical JSON instead
        return hash(self.to_json(sort_keys=True))

    # -- derived numbers ------------------------------------------------------------------
    def framed_radius(self, margin: float) -> float:
        """Object radius / frame side for a selection of this margin (exact by construction)."""
        return self.framing_factor / (2.0 * (1.0 + 2.0 * margin))

    def margin_for_radius(self, rho: float) -> float:
        """Inverse of ``framed_radius``."""
        return (self.framing_factor / (2.0 * rho) - 1.0) / 2.0

    def size_for_radius(self, rho: float) -> str | None:
        """The size name whose band contains ``rho`` (radius / frame side), else None."""
        for name, (lo, hi) in self.size_bands.items():
            if lo <= rho <= hi:
                return name
        return None

    def size_threshold(self) -> float:
        """Judge threshold: the middle of the gap between the small and large bands."""
        return (self.size_bands["small"][1] + self.size_bands["large"][0]) / 2.0

    def margin_for(self, looseness: str | float) -> float:
        """Margin for 'tight', 'loose' or an explicit float margin."""
        if isinstance(looseness, str):
            if looseness == "tight":
                return self.tight_margin
            if looseness == "loose":
                return self.loose_margin
            raise ValueError(f"looseness must be 'tight', 'loose' or a float, not {looseness!r}")
        return float(looseness)

    def margin_range(self, looseness: str) -> tuple[float, float]:
        if looseness == "tight":
            return self.tight_margin_range
        if looseness == "loose":
            return self.loose_margin_range
        raise ValueError(f"no margin range for {looseness!r}")

    def max_margin(self) -> float:
        return max(self.loose_margin_range[1], self.tight_margin_range[1], self.loose_margin)

    def validate(self) -> None:
        """Raise ValueError if the numbers contradict each other."""
        (s_lo, s_hi), (l_lo, l_hi) = self.size_bands["small"], self.size_bands["large"]
        if not (0 < s_lo < s_hi < l_lo < l_hi):
            raise ValueError("size bands must be ordered and separated")
        if l_hi + self.center_jitter >= 0.5:
            raise ValueError("a large object would leave the frame")
        for looseness, band in (("tight", "large"), ("loose", "small")):
            lo_m, hi_m = self.margin_range(looseness)
            b_lo, b_hi = self.size_bands[band]
            for m in (lo_m, hi_m, self.margin_for(looseness)):
                if not b_lo <= self.framed_radius(m) <= b_hi:
                    raise ValueError(f"{looseness} margin {m} does not map into the {band} band")
        for name in self.colors:
            if name not in self.color_regions:
                raise ValueError(f"no HSV region for colour {name}")
        for name in self.backgrounds:
            if name not in self.background_regions:
                raise ValueError(f"no HSV region for background {name}")

    # -- serialisation --------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            val = getattr(self, f.name)
            if f.name in ("color_regions", "background_regions"):
                val = _regions_to_dict(val)
            elif f.name == "size_bands":
                val = {k: list(v) for k, v in val.items()}
            elif isinstance(val, tuple):
                val = list(val)
            elif isinstance(val, dict):
                val = dict(val)
            d[f.name] = val
        d["conventions"] = {
            "rgb": "sRGB 0..255",
            "hsv": "hue degrees, s and v 0..1; hue range lo<0 wraps through 0; h null = any",
            "center": "centre of the object's axis-aligned bounding box",
            "radius": "half the longer side of the object's axis-aligned bounding box",
            "margin": "selection box = tight bbox grown on every side by margin * longer side",
            "framing": "square crop centred on the selection box, "
            "side = box longer side / framing_factor",
            "attr_keys": list(ATTR_KEYS),
        }
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> WorldSpec:
        """Inverse of ``to_dict``; unknown keys (such as ``conventions``) are ignored."""
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name not in d:
                continue
            val = d[f.name]
            if f.name in ("color_regions", "background_regions"):
                val = _regions_from_dict(val)
            elif f.name == "size_bands":
                val = {k: (float(v[0]), float(v[1])) for k, v in val.items()}
            elif f.name == "rotation_periods":
                val = {k: float(v) for k, v in val.items()}
            elif isinstance(val, list):
                val = tuple(val)
            kwargs[f.name] = val
        return cls(**kwargs)

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_json(cls, text: str) -> WorldSpec:
        return cls.from_dict(json.loads(text))


WORLD_SPEC = WorldSpec()
WORLD_SPEC.validate()


SPLITS: tuple[str, ...] = ("train", "val", "test", "independent")


def split_seed(split: str, index: int) -> int:
    """Seed for item ``index`` of ``split``; the splits' seed sets are disjoint by construction.

    ``seed = 4 * index + code`` (train 0, val 1, test 2, independent 3), so two different
    (split, index) pairs never share a seed.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    index = int(index)
    if index < 0:
        raise ValueError("index must be >= 0")
    return 4 * index + SPLITS.index(split)
