"""Colour conversions and the HSV-region colour namer shared by renderer, judge and captions.

All functions accept arrays of shape ``(..., 3)`` with sRGB values in 0..255 (any numeric
dtype). Hue is in degrees (0..360), saturation and value in 0..1, following the usual HSV
definitions (``v = max/255``, ``s = (max - min) / max``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from engine.world.spec import WORLD_SPEC, HsvRegion, WorldSpec

__all__ = [
    "classify_background",
    "classify_rgb",
    "classify_rgb_array",
    "hsv_to_rgb",
    "in_region",
    "median_rgb",
    "nearest_color",
    "rgb_to_hsv",
    "srgb_to_lab",
]


def rgb_to_hsv(rgb: np.ndarray | Sequence[float]) -> np.ndarray:
    """sRGB 0..255 ``(..., 3)`` -> HSV ``(..., 3)`` with hue in degrees [0, 360)."""
    a = np.asarray(rgb, dtype=np.float64) / 255.0
    mx = a.max(axis=-1)
    mn = a.min(axis=-1)
    delta = mx - mn
    r, g, b = a[..., 0], a[..., 1], a[..., 2]
    safe = np.where(delta > 0, delta, 1.0)
    h = np.where(
        mx == r,
        ((g - b) / safe) % 6.0,
        np.where(mx == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0),
    )
    h = np.where(delta > 0, h * 60.0, 0.0) % 360.0
    s = np.where(mx > 0, delta / np.where(mx > 0, mx, 1.0), 0.0)
    return np.stack([h, s, mx], axis=-1)


def hsv_to_rgb(hsv: np.ndarray | Sequence[float]) -> np.ndarray:
    """HSV ``(..., 3)`` (hue in degrees) -> sRGB float ``(..., 3)`` in 0..255 (not rounded)."""
    a = np.asarray(hsv, dtype=np.float64)
    h = (a[..., 0] % 360.0) / 60.0
    s = a[..., 1]
    v = a[..., 2]
    c = v * s
    x = c * (1.0 - np.abs(h % 2.0 - 1.0))
    m = v - c
    sector = np.floor(h).astype(np.int64) % 6
    zeros = np.zeros_like(c)
    table = np.stack(
        [
            np.stack([c, x, zeros], -1),
            np.stack([x, c, zeros], -1),
            np.stack([zeros, c, x], -1),
            np.stack([zeros, x, c], -1),
            np.stack([x, zeros, c], -1),
            np.stack([c, zeros, x], -1),
        ],
        axis=-2,
    )
    rgb = np.take_along_axis(table, sector[..., None, None], axis=-2)[..., 0, :]
    return (rgb + m[..., None]) * 255.0


def srgb_to_lab(rgb: np.ndarray | Sequence[float]) -> np.ndarray:
    """sRGB 0..255 -> CIELAB (D65). Used to check that colours stay distinguishable."""
    a = np.asarray(rgb, dtype=np.float64) / 255.0
    lin = np.where(a <= 0.04045, a / 12.92, ((a + 0.055) / 1.055) ** 2.4)
    m = np.array(
        [
            [0.4124564, 0.3575761, 0.1804375],
            [0.2126729, 0.7151522, 0.0721750],
            [0.0193339, 0.1191920, 0.9503041],
        ]
    )
    xyz = lin @ m.T / np.array([0.95047, 1.0, 1.08883])
    eps = 216 / 24389
    kappa = 24389 / 27
    f = np.where(xyz > eps, np.cbrt(xyz), (kappa * xyz + 16) / 116)
    lab_l = 116 * f[..., 1] - 16
    lab_a = 500 * (f[..., 0] - f[..., 1])
    lab_b = 200 * (f[..., 1] - f[..., 2])
    return np.stack([lab_l, lab_a, lab_b], axis=-1)


def in_region(hsv: np.ndarray, region: HsvRegion) -> np.ndarray:
    """Boolean mask: which HSV triples ``(..., 3)`` fall inside ``region`` (bounds inclusive)."""
    hsv = np.asarray(hsv, dtype=np.float64)
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    ok = (s >= region.s[0]) & (s <= region.s[1]) & (v >= region.v[0]) & (v <= region.v[1])
    if region.h is not None:
        lo, hi = region.h
        # Hue ranges may start below 0 to wrap through red: (-15, 10) means 345..360 and 0..10.
        rel = (h - lo) % 360.0
        ok &= rel <= (hi - lo)
    return ok


def _classify(
    rgb: np.ndarray, regions: Mapping[str, HsvRegion], names: Sequence[str]
) -> np.ndarray:
    hsv = rgb_to_hsv(rgb)
    out = np.full(hsv.shape[:-1], -1, dtype=np.int64)
    for i, name in enumerate(names):
        out = np.where((out < 0) & in_region(hsv, regions[name]), i, out)
    return out


def classify_rgb_array(rgb: np.ndarray, spec: WorldSpec = WORLD_SPEC) -> np.ndarray:
    """Index into ``spec.colors`` for each pixel ``(..., 3)``; -1 where no colour name applies."""
    return _classify(np.asarray(rgb), spec.color_regions, spec.colors)


def classify_rgb(rgb: Sequence[float] | np.ndarray, spec: WorldSpec = WORLD_SPEC) -> str | None:
    """The object-colour name whose HSV region contains ``rgb`` (0..255), or None.

    Regions are disjoint, so at most one name applies; colours in the gaps between regions
    (brown, pink, cyan, mid greys, ...) are deliberately unnamed.
    """
    idx = int(classify_rgb_array(np.asarray(rgb, dtype=np.float64).reshape(3), spec))
    return spec.colors[idx] if idx >= 0 else None


def classify_background(
    rgb: Sequence[float] | np.ndarray, spec: WorldSpec = WORLD_SPEC
) -> str | None:
    """The background name whose HSV region contains ``rgb`` (0..255), or None."""
    idx = int(
        _classify(np.asarray(rgb, dtype=np.float64).reshape(3), spec.background_regions,
                  spec.backgrounds)
    )
    return spec.backgrounds[idx] if idx >= 0 else None


def nearest_color(rgb: Sequence[float] | np.ndarray, spec: WorldSpec = WORLD_SPEC) -> str:
    """Forced-choice colour name: the region member, else the region centre nearest in CIELAB.

    For judges that must always answer; ``classify_rgb`` is the strict version.
    """
    name = classify_rgb(rgb, spec)
    if name is not None:
        return name
    lab = srgb_to_lab(np.asarray(rgb, dtype=np.float64).reshape(3))
    centres = np.stack([srgb_to_lab(spec.color_regions[c].center_rgb()) for c in spec.colors])
    return spec.colors[int(np.argmin(np.linalg.norm(centres - lab, axis=-1)))]


def median_rgb(image: np.ndarray, mask: np.ndarray, threshold: float = 0.99) -> np.ndarray:
    """Per-channel median of ``image`` over pixels where ``mask >= threshold``.

    Falls back to ``mask >= 0.5`` when the interior is empty (very thin objects).
    """
    sel = mask >= threshold
    if not sel.any():
        sel = mask >= 0.5
    if not sel.any():
        raise ValueError("mask selects no pixels")
    return np.median(image[sel].astype(np.float64), axis=0)
