"""A random opaque RGBA canvas and a rectangular selection with one soft edge: the region
most engine tests edit."""

from __future__ import annotations

import numpy as np


def random_canvas(seed: int = 0, w: int = 80, h: int = 60,
                  box: tuple[int, int, int, int] = (30, 20, 52, 40), edge: int = 90
                  ) -> tuple[np.ndarray, np.ndarray]:
    """``(rgba [h, w, 4] uint8, selection [h, w] uint8)``; the selection is 255 inside
    ``box`` (x0, y0, x1, y1) with its left column at ``edge``, a soft edge."""
    rng = np.random.default_rng(seed)
    rgba = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    rgba[..., 3] = 255
    x0, y0, x1, y1 = box
    sel = np.zeros((h, w), np.uint8)
    sel[y0:y1, x0:x1] = 255
    sel[y0:y1, x0] = edge
    return rgba, sel
