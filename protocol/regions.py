"""Region geometry shared by the plugins and the engine.

Pure Python, standard library only: this module is vendored into Krita (Python 3.10/3.11)
and GIMP (Python 3.13), where numpy is not guaranteed.

Coordinates are document (canvas) pixels; ``x`` grows right and ``y`` grows down. A pixel
``(i, j)`` covers the continuous square ``[i, i+1) × [j, j+1)``, so its centre is at
``(i + 0.5, j + 0.5)``.

The pieces:

* :class:`Box` — an ``(x, y, w, h)`` rectangle.
* :class:`Framing` — how a selection box becomes the model's square crop (from a pack
  manifest's ``"framing"`` entry).
* :class:`FrameTransform` — the resulting document→frame similarity transform and its
  inverse. Box and pad framings give axis-aligned squares; the ``ffhq`` framing a
  landmark-based similarity per face, rotation included (the engine finds the faces).
* :func:`model_square`, :func:`context_box` — what the engine frames and what a plugin
  must send.
* :func:`mask_bbox` — the tight bounding box of a selection mask (``a8`` bytes).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

__all__ = [
    "FFHQ_CONTEXT",
    "PAD_FEATHER_MIN",
    "PAD_FEATHER_REL",
    "PAD_GROW",
    "PAD_MULTIPLE",
    "PAD_PADDING_REL",
    "Box",
    "FrameTransform",
    "Framing",
    "RegionError",
    "context_box",
    "mask_bbox",
    "model_square",
]

# Context padding of the "pad" framing, after Acly/krita-ai-diffusion's selection handling:
# feather = 10% of the box diagonal (at least 32 px), grow 4 px, padding 6% of the box's
# average side; the square's side is rounded up to a multiple of 8.
PAD_FEATHER_REL = 0.10
PAD_FEATHER_MIN = 32.0
PAD_GROW = 4.0
PAD_PADDING_REL = 0.06
PAD_MULTIPLE = 8

# The ffhq framing's context: a square of this many times the selection box's longer side.
# The FFHQ square is about four eye distances wide (twice a face's width) and may be
# rotated; a selection drawn tightly around a face needs this much around it.
FFHQ_CONTEXT = 3.0

# Tolerance for float noise before ceil(): 70 / 0.7 is 100.00000000000001 in binary.
_EPS = 1e-9


class RegionError(ValueError):
    """A selection or region that cannot be edited (empty, outside the canvas, ...)."""


class Box(NamedTuple):
    """An axis-aligned rectangle ``(x, y, w, h)`` in integer pixels.

    ``x``/``y`` may be negative (model squares can extend past the canvas). ``w``/``h`` of 0
    or less make an empty box.
    """

    x: int
    y: int
    w: int
    h: int

    @classmethod
    def from_corners(cls, x0: int, y0: int, x1: int, y1: int) -> Box:
        """The box ``[x0, x1) × [y0, y1)``."""
        return cls(int(x0), int(y0), int(x1) - int(x0), int(y1) - int(y0))

    @classmethod
    def of(cls, value: Any) -> Box:
        """Coerce a 4-sequence (e.g. a list from the wire) to a Box of ints."""
        if isinstance(value, Box):
            return value
        try:
            x, y, w, h = value
        except (TypeError, ValueError):
            raise RegionError(f"a box is [x, y, w, h], got {value!r}") from None
        parts = (x, y, w, h)
        for v in parts:
            if isinstance(v, bool) or not isinstance(v, int):
                if isinstance(v, float) and v.is_integer():
                    continue
                raise RegionError(f"box coordinates must be integers, got {value!r}")
        return cls(int(x), int(y), int(w), int(h))

    @property
    def x1(self) -> int:
        """Right edge (exclusive)."""
        return self.x + self.w

    @property
    def y1(self) -> int:
        """Bottom edge (exclusive)."""
        return self.y + self.h

    @property
    def empty(self) -> bool:
        return self.w <= 0 or self.h <= 0

    @property
    def area(self) -> int:
        return 0 if self.empty else self.w * self.h

    @property
    def center(self) -> tuple[float, float]:
        return (self.x + self.w / 2.0, self.y + self.h / 2.0)

    def translate(self, dx: int, dy: int) -> Box:
        return Box(self.x + dx, self.y + dy, self.w, self.h)

    def intersect(self, other: Box) -> Box:
        """The overlap; an empty box (w or h of 0) when there is none."""
        x0, y0 = max(self.x, other.x), max(self.y, other.y)
        x1, y1 = min(self.x1, other.x1), min(self.y1, other.y1)
        return Box(x0, y0, max(0, x1 - x0), max(0, y1 - y0))

    def union(self, other: Box) -> Box:
        """The smallest box containing both (an empty box contributes nothing)."""
        if other.empty:
            return self
        if self.empty:
            return other
        return Box.from_corners(
            min(self.x, other.x), min(self.y, other.y),
            max(self.x1, other.x1), max(self.y1, other.y1),
        )

    def contains(self, other: Box) -> bool:
        """Whether ``other`` lies inside this box (an empty box is inside anything)."""
        if other.empty:
            return True
        return (
            self.x <= other.x and self.y <= other.y
            and other.x1 <= self.x1 and other.y1 <= self.y1
        )

    def clip(self, canvas_w: int, canvas_h: int) -> Box:
        """Intersection with the canvas ``(0, 0, canvas_w, canvas_h)``."""
        return self.intersect(Box(0, 0, canvas_w, canvas_h))

    def to_list(self) -> list[int]:
        return [self.x, self.y, self.w, self.h]


@dataclass(frozen=True)
class FrameTransform:
    """A similarity transform from document pixels to the model frame.

    Normalised frame coordinates ``(u, v)`` span ``[0, 1]²`` over the frame:

        u = a·x − b·y + tx
        v = b·x + a·y + ty

    ``(a, b)`` is scale × (cos θ, sin θ). Box and pad framings have ``b = 0`` and
    ``a = 1 / side``. Frame-pixel units are normalised units × the model resolution.
    """

    a: float
    b: float
    tx: float
    ty: float

    @classmethod
    def for_square(cls, x0: float, y0: float, side: float) -> FrameTransform:
        """The axis-aligned transform that maps the square ``(x0, y0, side)`` onto the frame."""
        if side <= 0:
            raise RegionError("a frame square needs a positive side")
        return cls(1.0 / side, 0.0, -x0 / side, -y0 / side)

    @property
    def axis_aligned(self) -> bool:
        return self.b == 0.0

    @property
    def scale(self) -> float:
        """Normalised frame units per document pixel."""
        return math.hypot(self.a, self.b)

    def to_frame(self, x: float, y: float, resolution: int | None = None) -> tuple[float, float]:
        """Document point → frame point (normalised, or frame pixels if ``resolution``)."""
        u = self.a * x - self.b * y + self.tx
        v = self.b * x + self.a * y + self.ty
        if resolution is not None:
            return (u * resolution, v * resolution)
        return (u, v)

    def from_frame(
        self, u: float, v: float, resolution: int | None = None
    ) -> tuple[float, float]:
        """Frame point (normalised, or frame pixels if ``resolution``) → document point."""
        if resolution is not None:
            u, v = u / resolution, v / resolution
        du, dv = u - self.tx, v - self.ty
        det = self.a * self.a + self.b * self.b
        return ((self.a * du + self.b * dv) / det, (-self.b * du + self.a * dv) / det)

    def bounding_square(self) -> tuple[int, int, int]:
        """The smallest integer square ``(x0, y0, side)`` holding the frame's preimage.

        For the axis-aligned transforms made by :meth:`for_square` with integer arguments
        this returns that square (up to float noise, which is rounded away).
        """
        corners = [self.from_frame(u, v) for u, v in ((0, 0), (1, 0), (0, 1), (1, 1))]
        xs = [c[0] for c in corners]
        ys = [c[1] for c in corners]
        x0 = math.floor(min(xs) + 1e-6)
        y0 = math.floor(min(ys) + 1e-6)
        x1 = math.ceil(max(xs) - 1e-6)
        y1 = math.ceil(max(ys) - 1e-6)
        side = max(x1 - x0, y1 - y0, 1)
        # Centre the (possibly enlarged) short axis.
        if x1 - x0 < side:
            x0 -= (side - (x1 - x0)) // 2
        if y1 - y0 < side:
            y0 -= (side - (y1 - y0)) // 2
        return (x0, y0, side)


def _centred(start: int, length: int, side: int) -> int:
    """Start of a span of ``side`` centred on ``[start, start + length)``.

    Exact when ``side - length`` is even; otherwise off by half a pixel (to the left/top).
    """
    return start + (length - side) // 2


def _round_up(value: float, multiple: int) -> int:
    n = max(1, math.ceil(value - _EPS))
    return -(-n // multiple) * multiple


@dataclass(frozen=True)
class Framing:
    """How a selection becomes the model's square crop.

    * ``Framing("box", factor=F)``: a square centred on the selection's box, side = the
      box's longer side / F. For packs trained on aligned objects: F = 0.7 means the
      selection box covers 70% of the frame. ``0 < F <= 1``.
    * ``Framing("pad")`` (the default): Krita-AI-Diffusion-style context padding — pad =
      feather (10% of the diagonal, min 32 px) + grow 4 px + 6% of the box's average side
      on every side, made square around the box centre, side rounded up to a multiple of 8.
    * ``Framing("ffhq", context=C)``: faces, aligned as FFHQ was (e4e's ``align_face``).
      The engine finds every face in the selection and frames each by its landmarks;
      what the editors send (:func:`context_box`) is a square of ``C`` (3 by default)
      times the selection box's longer side around it, clipped to the layer.
    """

    kind: str = "pad"
    factor: float | None = None
    context: float | None = None

    KINDS = ("box", "pad", "ffhq")

    def __post_init__(self) -> None:
        if self.kind not in self.KINDS:
            raise RegionError(f"unknown framing kind {self.kind!r} (known: {list(self.KINDS)})")
        if self.kind == "box":
            f = self.factor
            if isinstance(f, bool) or not isinstance(f, (int, float)):
                raise RegionError(f"box framing needs a numeric 'factor', got {f!r}")
            if not (0.0 < float(f) <= 1.0) or math.isnan(f):
                raise RegionError(f"box framing 'factor' must be in (0, 1], got {f!r}")
            object.__setattr__(self, "factor", float(f))
        elif self.factor is not None:
            raise RegionError(f"{self.kind} framing takes no 'factor'")
        if self.kind == "ffhq":
            c = FFHQ_CONTEXT if self.context is None else self.context
            if isinstance(c, bool) or not isinstance(c, (int, float)) or math.isnan(c) \
                    or not 1.0 <= float(c) <= 8.0:
                raise RegionError(f"ffhq framing 'context' must be in [1, 8], got {c!r}")
            object.__setattr__(self, "context", float(c))
        elif self.context is not None:
            raise RegionError(f"{self.kind} framing takes no 'context'")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Framing:
        """From a pack manifest's ``"framing"`` entry; None or ``{}`` gives the pad default.

        Unknown keys are ignored (newer manifests may add some).
        """
        if data is None:
            return cls()
        if isinstance(data, Framing):
            return data
        if not isinstance(data, Mapping):
            raise RegionError(f"framing must be a mapping, got {type(data).__name__}")
        kind = data.get("kind", "pad")
        if kind == "box":
            if "factor" not in data:
                raise RegionError("box framing needs a 'factor'")
            return cls("box", data["factor"])
        if kind == "ffhq":
            return cls("ffhq", context=data.get("context"))
        return cls(kind)

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "box":
            return {"kind": "box", "factor": self.factor}
        if self.kind == "ffhq":
            return {"kind": "ffhq", "context": self.context}
        return {"kind": self.kind}

    def exact_square(
        self, x0: float, y0: float, x1: float, y1: float
    ) -> tuple[float, float, float]:
        """The box rule in exact arithmetic: ``(x0, y0, side)`` of the square centred on the
        continuous box ``[x0, x1) x [y0, y1)`` with side = longer side / factor. Ground truth
        and evaluation crops use it; :meth:`square` is the same rule on whole pixels."""
        if self.kind != "box" or self.factor is None:
            raise RegionError("exact_square is defined for box framing")
        if not (x1 > x0 and y1 > y0):
            raise RegionError(f"empty box {(x0, y0, x1, y1)!r}")
        side = max(x1 - x0, y1 - y0) / self.factor
        return ((x0 + x1 - side) / 2.0, (y0 + y1 - side) / 2.0, side)

    def square(self, selection_box: Box) -> tuple[int, int, int]:
        """The model square ``(x0, y0, side)`` for a selection box (document coordinates);
        for ``ffhq``, the square of context the engine looks for faces in."""
        box = Box.of(selection_box)
        if box.empty:
            raise RegionError("the selection is empty")
        longer = max(box.w, box.h)
        if self.kind == "box":
            assert self.factor is not None
            side = max(1, math.ceil(longer / self.factor - _EPS))
        elif self.kind == "ffhq":
            assert self.context is not None
            side = max(1, math.ceil(longer * self.context - _EPS))
        else:
            diagonal = math.hypot(box.w, box.h)
            feather = max(PAD_FEATHER_MIN, PAD_FEATHER_REL * diagonal)
            pad = feather + PAD_GROW + PAD_PADDING_REL * (box.w + box.h) / 2.0
            side = _round_up(longer + 2.0 * pad, PAD_MULTIPLE)
        return (_centred(box.x, box.w, side), _centred(box.y, box.h, side), side)

    def transform(self, selection_box: Box) -> FrameTransform:
        """The document→frame transform for a selection box."""
        x0, y0, side = self.square(selection_box)
        return FrameTransform.for_square(x0, y0, side)


def model_square(selection_box: Box, framing: Framing | None = None) -> tuple[int, int, int]:
    """The square model crop ``(x0, y0, side)`` in document coordinates.

    It may extend past the canvas; the engine fills that part by edge replication.
    """
    return (framing or Framing()).square(Box.of(selection_box))


def context_box(
    selection_box: Box, canvas_w: int, canvas_h: int, framing: Framing | None = None
) -> Box:
    """The part of the layer a plugin must send: model square ∩ canvas.

    It always contains the whole (canvas-clipped) selection box. Raises :class:`RegionError`
    for an empty selection or one entirely outside the canvas.
    """
    if canvas_w <= 0 or canvas_h <= 0:
        raise RegionError(f"invalid canvas size {canvas_w}×{canvas_h}")
    box = Box.of(selection_box)
    if box.empty:
        raise RegionError("the selection is empty")
    sel = box.clip(canvas_w, canvas_h)
    if sel.empty:
        raise RegionError("the selection lies outside the canvas")
    x0, y0, side = model_square(sel, framing)
    return Box(x0, y0, side, side).union(sel).clip(canvas_w, canvas_h)


def mask_bbox(mask_bytes: bytes | bytearray | memoryview, width: int, height: int) -> Box | None:
    """Tight bounding box of the non-zero pixels of an ``a8`` mask, or None if all zero.

    Pure Python but vectorised through C-level ``bytes`` methods: the first and last
    non-zero bytes give the row range, then each row in it is stripped of zeros from both
    ends. Rows are only stripped where they could still widen the box.
    """
    if width <= 0 or height <= 0:
        raise RegionError(f"invalid mask size {width}×{height}")
    data = bytes(mask_bytes) if not isinstance(mask_bytes, bytes) else mask_bytes
    if len(data) != width * height:
        raise RegionError(
            f"mask has {len(data)} bytes, expected {width}×{height} = {width * height}"
        )
    head = len(data) - len(data.lstrip(b"\x00"))
    if head == len(data):
        return None
    tail = len(data.rstrip(b"\x00"))  # one past the last non-zero byte
    y0, y1 = head // width, (tail - 1) // width + 1
    # The first and last rows' own extents seed the column range.
    x0 = head - y0 * width
    x1 = tail - (y1 - 1) * width
    if y1 - y0 == 1:
        return Box(x0, y0, x1 - x0, 1)
    last = data[(y1 - 1) * width:tail]
    x0 = min(x0, len(last) - len(last.lstrip(b"\x00")))
    x1 = max(x1, len(data[y0 * width:(y0 + 1) * width].rstrip(b"\x00")))
    for y in range(y0 + 1, y1 - 1):
        if x0 == 0 and x1 == width:
            break
        start = y * width
        if x0 > 0:
            left = data[start:start + x0].lstrip(b"\x00")
            if left:
                x0 -= len(left)
        if x1 < width:
            right = data[start + x1:start + width].rstrip(b"\x00")
            if right:
                x1 += len(right)
    return Box(x0, y0, x1 - x0, y1 - y0)


def crop_pixels(data: bytes | bytearray | memoryview, width: int, height: int,
                bytes_per_pixel: int, box: Box) -> bytes:
    """The rows of ``box`` (inside the image) from a packed pixel buffer, as new bytes."""
    box = Box.of(box)
    if box.x < 0 or box.y < 0 or box.x1 > width or box.y1 > height or box.empty:
        raise RegionError(f"crop box {box.to_list()} is not inside the {width}×{height} image")
    view = memoryview(data).cast("B")
    if len(view) != width * height * bytes_per_pixel:
        raise RegionError(f"buffer has {len(view)} bytes, expected "
                          f"{width}×{height}×{bytes_per_pixel}")
    stride = width * bytes_per_pixel
    if box.x == 0 and box.w == width:
        return bytes(view[box.y * stride:box.y1 * stride])
    left, right = box.x * bytes_per_pixel, box.x1 * bytes_per_pixel
    return b"".join(view[y * stride + left:y * stride + right] for y in range(box.y, box.y1))
