"""How a selection becomes the generator's frame, as an invertible canvas <-> frame transform.

Frame coordinates are in units of the frame side: (0, 0) is the frame's top-left corner and
(1, 1) its bottom-right, whatever the model's resolution (multiply by it for pixels). Canvas
coordinates are pixels with (0, 0) at the canvas's top-left pixel corner, so pixel (i, j)
covers [j, j+1) x [i, i+1).

``BoxFraming`` is the world's rule: a square centred on the selection box with side
``longer_side / factor``. Anything that maps a selection to a similarity transform (a face
pack aligning on landmarks) can take its slot by offering the same methods.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from engine.world.spec import WORLD_SPEC
from protocol.regions import Framing

__all__ = ["Box", "BoxFraming", "crop_frame"]

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 (x1, y1 exclusive pixel edges)


@dataclass(frozen=True)
class BoxFraming:
    """Square crop centred on a box, side = box's longer side / factor.

    Use it unbound (``framing.to_frame(points, box)``) or bound to one selection
    (``framing.fit(box).to_frame(points)``).
    """

    factor: float = WORLD_SPEC.framing_factor
    box: Box | None = None

    def fit(self, box: Sequence[float]) -> BoxFraming:
        """This framing bound to one selection box."""
        x0, y0, x1, y1 = (float(v) for v in box)
        if not (x1 > x0 and y1 > y0):
            raise ValueError(f"empty box {box!r}")
        return BoxFraming(self.factor, (x0, y0, x1, y1))

    def _box(self, box: Sequence[float] | None) -> Box:
        if box is not None:
            return self.fit(box).box  # type: ignore[return-value]
        if self.box is None:
            raise ValueError("no box: pass one or use fit(box)")
        return self.box

    def frame_rect(self, box: Sequence[float] | None = None) -> tuple[float, float, float]:
        """(x0, y0, side) of the frame on the canvas, in canvas pixels (floats): the engine's
        box rule (:meth:`protocol.regions.Framing.exact_square`), without pixel rounding."""
        return Framing("box", self.factor).exact_square(*self._box(box))

    def matrix(self, box: Sequence[float] | None = None) -> np.ndarray:
        """3x3 affine matrix taking homogeneous canvas points to frame units."""
        fx, fy, side = self.frame_rect(box)
        return np.array([[1 / side, 0, -fx / side], [0, 1 / side, -fy / side], [0, 0, 1.0]])

    def to_frame(self, points: Any, box: Sequence[float] | None = None) -> np.ndarray:
        """Canvas points (..., 2) -> frame units (..., 2)."""
        fx, fy, side = self.frame_rect(box)
        p = np.asarray(points, dtype=np.float64)
        return (p - np.array([fx, fy])) / side

    def from_frame(self, points: Any, box: Sequence[float] | None = None) -> np.ndarray:
        """Frame units (..., 2) -> canvas points (..., 2); inverse of ``to_frame``."""
        fx, fy, side = self.frame_rect(box)
        p = np.asarray(points, dtype=np.float64)
        return p * side + np.array([fx, fy])

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "box", "factor": self.factor}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BoxFraming:
        if d.get("kind", "box") != "box":
            raise ValueError(f"not a box framing: {d!r}")
        return cls(float(d["factor"]))


def crop_frame(
    image: np.ndarray,
    rect: tuple[float, float, float],
    size: int,
    resample: Image.Resampling = Image.Resampling.BILINEAR,
) -> np.ndarray:
    """Resample the square ``rect`` = (x0, y0, side) of ``image`` to ``size`` x ``size``.

    Parts of the frame outside the canvas repeat the edge pixels. Pillow's ``reducing_gap``
    pre-shrinks by box averaging, so large frames are anti-aliased, not point-sampled.
    """
    x0, y0, side = rect
    h, w = image.shape[:2]
    pad_l = max(0, int(np.ceil(-x0)))
    pad_t = max(0, int(np.ceil(-y0)))
    pad_r = max(0, int(np.ceil(x0 + side - w)))
    pad_b = max(0, int(np.ceil(y0 + side - h)))
    if pad_l or pad_t or pad_r or pad_b:
        pads = [(pad_t, pad_b), (pad_l, pad_r)] + [(0, 0)] * (image.ndim - 2)
        image = np.pad(image, pads, mode="edge")
    pil = Image.fromarray(image)
    box = (x0 + pad_l, y0 + pad_t, x0 + pad_l + side, y0 + pad_t + side)
    out = pil.resize((size, size), resample=resample, box=box, reducing_gap=2.0)
    return np.asarray(out)
