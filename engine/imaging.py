"""Pixels in and out of the model: decoding, framing a selection, pasting the edit back.

The flow for one edit::

    layer = decode_pixels(data, w, h, fmt)            # H×W×4 float32, source transfer
    mask = decode_pixels(mask_data, w, h, "a8")       # H×W float32 in [0, 1]
    framed = frame_region(layer, mask, framing=..., resolution=R,
                          transfer=transfer, fmt=fmt, offset=(crop_x, crop_y))
    edited = method(framed.image, framed.mask)        # [1, 3, R, R] in [-1, 1]
    patch = paste_back(framed, edited, inversion=inv, mode="delta")
    reply(patch.encode(), patch.offset, patch.width, patch.height)

Guarantee (checked by the tests): wherever the selection is 0 the patch's alpha is exactly
0, so compositing the patch over the original leaves those pixels bit-identical.

Resampling is done with separable sparse matrices (scipy.sparse) instead of materialising
the model square: a selection spanning an 8000×300 layer gives a ~10 000 px square that
would be 1.6 GB as float32, while the matrices only touch the pixels that exist. Edge
replication past the layer is folded into the matrices (clamped column indices, summed),
and the kernels match ``torch.nn.functional.interpolate(..., antialias=True)`` (triangle
for bilinear, Keys a = −0.5 for bicubic) — the tests compare against it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from scipy import ndimage, sparse

from protocol.pixels import non_finite_sentence
from protocol.regions import Box, FrameTransform, Framing, RegionError

__all__ = [
    "FORMATS",
    "TRANSFERS",
    "FramedRegion",
    "Patch",
    "RegionError",
    "bytes_per_pixel",
    "check_finite",
    "composite_over",
    "decode_pixels",
    "decode_raw",
    "encode_pixels",
    "frame_region",
    "inversion_psnr",
    "linear_to_srgb",
    "merge_patches",
    "paste_back",
    "srgb_to_linear",
]

Transfer = Literal["srgb", "linear"]
Kernel = Literal["bilinear", "bicubic"]


@dataclass(frozen=True)
class _Format:
    dtype: np.dtype
    channels: int
    scale: float | None  # integer full-scale value; None for float formats


FORMATS: dict[str, _Format] = {
    "rgba8": _Format(np.dtype("u1"), 4, 255.0),
    "rgba16": _Format(np.dtype("<u2"), 4, 65535.0),
    "rgbaf16": _Format(np.dtype("<f2"), 4, None),  # half floats, e.g. Krita's F16 as it is
    "rgbaf32": _Format(np.dtype("<f4"), 4, None),
    "a8": _Format(np.dtype("u1"), 1, 255.0),
}
TRANSFERS = ("srgb", "linear")


def _format(fmt: str) -> _Format:
    try:
        return FORMATS[fmt]
    except KeyError:
        raise RegionError(f"unknown pixel format {fmt!r} (known: {sorted(FORMATS)})") from None


def _check_transfer(transfer: str) -> None:
    if transfer not in TRANSFERS:
        raise RegionError(f"unknown transfer {transfer!r} (known: {list(TRANSFERS)})")


def bytes_per_pixel(fmt: str) -> int:
    spec = _format(fmt)
    return spec.channels * spec.dtype.itemsize


# --------------------------------------------------------------------------- pixel codecs


def decode_raw(
    data: bytes | bytearray | memoryview, width: int, height: int, fmt: str
) -> np.ndarray:
    """The wire bytes as an array of their own type (uint8, uint16 or float32), no copy.

    H×W×4 for RGBA formats, H×W for ``a8``. The array is read-only when ``data`` is.
    """
    spec = _format(fmt)
    if width <= 0 or height <= 0:
        raise RegionError(f"invalid image size {width}×{height}")
    expected = width * height * spec.channels * spec.dtype.itemsize
    view = memoryview(data)
    if view.nbytes != expected:
        raise RegionError(
            f"{fmt} buffer of {width}×{height} needs {expected} bytes, got {view.nbytes}"
        )
    if not view.c_contiguous:
        view = memoryview(view.tobytes())
    raw = np.frombuffer(view.cast("B"), dtype=spec.dtype)
    shape = (height, width) if spec.channels == 1 else (height, width, spec.channels)
    return raw.reshape(shape)


def decode_pixels(
    data: bytes | bytearray | memoryview, width: int, height: int, fmt: str
) -> np.ndarray:
    """Wire bytes → float32 array: H×W×4 (RGBA formats) or H×W (``a8``).

    Integer formats are scaled to [0, 1]. ``rgbaf32`` values are passed through unchanged
    (float layers can hold HDR values above 1; they survive untouched where not edited).
    """
    raw = decode_raw(data, width, height, fmt)
    return _normalise(raw, _format(fmt))


def _normalise(raw: np.ndarray, spec: _Format) -> np.ndarray:
    if spec.scale is None:
        return raw.astype(np.float32, copy=True)
    return raw.astype(np.float32) / np.float32(spec.scale)


def _quantise(array: np.ndarray, spec: _Format) -> np.ndarray:
    """float → the format's dtype (round(x·scale) with clipping for integer formats)."""
    if spec.scale is None:
        return np.ascontiguousarray(array, dtype=spec.dtype)
    x = np.asarray(array)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float32)
    x = np.nan_to_num(x, nan=0.0, posinf=1.0, neginf=0.0)
    x = np.clip(x, 0.0, 1.0) * x.dtype.type(spec.scale)
    return np.rint(x).astype(spec.dtype)


def encode_pixels(array: np.ndarray, fmt: str) -> bytes:
    """float array (H×W×4, or H×W for ``a8``) → wire bytes in ``fmt``.

    Integer formats: ``round(clip(x, 0, 1) · 255)`` or ``· 65535`` (NaN → 0), little-endian.
    ``rgbaf32``: the float32 values as they are.
    """
    spec = _format(fmt)
    x = np.asarray(array)
    if spec.channels == 1 and x.ndim == 3 and x.shape[2] == 1:
        x = x[..., 0]
    want_ndim = 2 if spec.channels == 1 else 3
    if x.ndim != want_ndim or (want_ndim == 3 and x.shape[2] != spec.channels):
        raise RegionError(f"{fmt} needs an array of shape H×W×{spec.channels}, got {x.shape}")
    return _quantise(x, spec).tobytes()


def srgb_to_linear(x: Any) -> Any:
    """IEC 61966-2-1 sRGB decoding (numpy array, torch tensor or float).

    ``x/12.92`` up to 0.04045, else ``((x + 0.055)/1.055)^2.4``. Values outside [0, 1] follow
    the same formulas (negative values take the linear branch).
    """
    if isinstance(x, torch.Tensor):
        high = ((x.clamp_min(0.04045) + 0.055) / 1.055) ** 2.4
        return torch.where(x <= 0.04045, x / 12.92, high)
    scalar = isinstance(x, (int, float))
    a = _float_array(x)
    t = a.dtype.type
    out = np.asarray(np.maximum(a, t(0.04045)))
    out += t(0.055)
    out /= t(1.055)
    np.power(out, t(2.4), out=out)
    np.copyto(out, a / t(12.92), where=a <= t(0.04045))
    return _unwrap(out, scalar)


def linear_to_srgb(x: Any) -> Any:
    """IEC 61966-2-1 sRGB encoding (numpy array, torch tensor or float).

    ``12.92·x`` up to 0.0031308, else ``1.055·x^(1/2.4) − 0.055``.
    """
    if isinstance(x, torch.Tensor):
        high = 1.055 * x.clamp_min(0.0031308) ** (1 / 2.4) - 0.055
        return torch.where(x <= 0.0031308, x * 12.92, high)
    scalar = isinstance(x, (int, float))
    a = _float_array(x)
    t = a.dtype.type
    out = np.asarray(np.maximum(a, t(0.0031308)))
    np.power(out, t(1 / 2.4), out=out)
    out *= t(1.055)
    out -= t(0.055)
    np.copyto(out, a * t(12.92), where=a <= t(0.0031308))
    return _unwrap(out, scalar)


def _unwrap(out: np.ndarray, scalar: bool) -> Any:
    if scalar:
        return float(out)
    return out[()] if out.ndim == 0 else out


def _float_array(x: Any) -> np.ndarray:
    a = np.asarray(x)
    if not np.issubdtype(a.dtype, np.floating):
        a = a.astype(np.float64 if a.ndim == 0 else np.float32)
    return a


# --------------------------------------------------------------------------- resampling


def _triangle(t: np.ndarray) -> np.ndarray:
    return np.maximum(0.0, 1.0 - np.abs(t))


def _keys_cubic(t: np.ndarray, a: float = -0.5) -> np.ndarray:
    t = np.abs(t)
    t2, t3 = t * t, t * t * t
    near = (a + 2.0) * t3 - (a + 3.0) * t2 + 1.0
    far = a * t3 - 5.0 * a * t2 + 8.0 * a * t - 4.0 * a
    return np.where(t <= 1.0, near, np.where(t < 2.0, far, 0.0))


_KERNELS = {"bilinear": (1.0, _triangle), "bicubic": (2.0, _keys_cubic)}


def _resample_matrix(
    centres: np.ndarray,
    scale: float,
    domain: tuple[int, int],
    valid: tuple[int, int],
    kernel: str,
    *,
    replicate: bool,
) -> sparse.csr_matrix:
    """One axis of an antialiased resize as a sparse (n_out × n_valid) matrix.

    ``centres`` are the output samples' centres in source pixel coordinates (source pixel
    ``j`` is centred at ``j + 0.5``); ``scale`` is source pixels per output pixel. As in
    torch's antialiased interpolate, the filter is widened by ``scale`` when downscaling and
    the weights are normalised over the source ``domain`` (the model square). Source indices
    outside ``valid`` (the pixels we actually have) are clamped onto its edge
    (``replicate=True``: edge replication) or dropped (``replicate=False``: zero padding,
    used for the selection mask, which is 0 off the layer crop).
    """
    try:
        support, fn = _KERNELS[kernel]
    except KeyError:
        raise RegionError(f"unknown resampling kernel {kernel!r}") from None
    widen = max(scale, 1.0)
    radius = support * widen
    centres = np.asarray(centres, dtype=np.float64)
    n = centres.shape[0]
    taps = math.ceil(2.0 * radius) + 2
    first = np.floor(centres - radius).astype(np.int64)
    idx = first[:, None] + np.arange(taps, dtype=np.int64)[None, :]
    weights = fn((idx + 0.5 - centres[:, None]) / widen)
    d0, d1 = domain
    weights = np.where((idx >= d0) & (idx < d1), weights, 0.0)
    total = weights.sum(axis=1, keepdims=True)
    if np.any(total <= 0.0):  # a centre off the domain: fall back to the nearest pixel
        nearest = np.clip(np.floor(centres), d0, d1 - 1).astype(np.int64)
        bad = total[:, 0] <= 0.0
        weights[bad] = np.where(idx[bad] == nearest[bad, None], 1.0, 0.0)
        total = weights.sum(axis=1, keepdims=True)
    weights = weights / total
    v0, v1 = valid
    if not replicate:
        weights = np.where((idx >= v0) & (idx < v1), weights, 0.0)
    cols = np.clip(idx, v0, v1 - 1) - v0
    rows = np.repeat(np.arange(n, dtype=np.int64), taps)
    matrix = sparse.csr_matrix(
        (weights.ravel().astype(np.float32), (rows, cols.ravel())), shape=(n, v1 - v0)
    )
    matrix.eliminate_zeros()
    return matrix


def _apply_separable(
    rows: sparse.csr_matrix, cols: sparse.csr_matrix, image: np.ndarray
) -> np.ndarray:
    """``rows @ image @ cols.T`` per channel: (h×w×c) → (rows.n × cols.n × c) float32."""
    h, w, c = image.shape
    tmp = rows @ np.ascontiguousarray(image, dtype=np.float32).reshape(h, w * c)
    n_rows = tmp.shape[0]
    tmp = np.ascontiguousarray(tmp.reshape(n_rows, w, c).transpose(1, 0, 2)).reshape(w, -1)
    out = cols @ tmp  # (n_cols, n_rows * c)
    return np.ascontiguousarray(
        np.asarray(out, dtype=np.float32).reshape(cols.shape[0], n_rows, c).transpose(1, 0, 2)
    )


# --------------------------------------------------------------------------- framing


@dataclass
class FramedRegion:
    """A selection framed for the model, plus what paste-back needs.

    Attributes:
        image: [1, 3, R, R] float32 in [-1, 1], sRGB-encoded, transparency composited onto
            the background colour, past-the-layer pixels edge-replicated.
        mask: [1, 1, R, R] float32 in [0, 1], the selection in the frame (0 off the layer).
        square: the model square in document coordinates (may extend past the canvas).
        transform: document → frame transform of that square.
        resolution: R.
        selection_box: the box the framing was computed from (document coordinates).
        patch_box: the tight box of ``selection > 0``, document coordinates: what the patch
            covers.
        original: the layer's pixels in ``patch_box`` (h×w×4 float32, source transfer).
        selection: the selection mask in ``patch_box`` (h×w float32), None = the whole layer.
        selection_edges: whether ``patch_box``'s (left, top, right, bottom) side is the edge
            of the pixels we were sent; feathering treats those as "selection continues".
        transfer, fmt: the source layer's transfer and wire format (the patch's too).
    """

    image: torch.Tensor
    mask: torch.Tensor
    square: Box
    transform: FrameTransform
    resolution: int
    selection_box: Box
    patch_box: Box
    original: np.ndarray
    selection: np.ndarray | None
    selection_edges: tuple[bool, bool, bool, bool]
    transfer: str
    fmt: str


def check_finite(pixels: np.ndarray, selection: np.ndarray | None,
                 offset: tuple[int, int] = (0, 0), where: str = "inside the selection") -> None:
    """Refuse NaN or infinite values (any channel) where ``selection`` (None: everywhere)
    is above 0, with the sentence every client uses (:mod:`protocol.pixels`); elsewhere
    they are ignored: the model sees 0 there and the patch never covers them."""
    if pixels.dtype.kind != "f":
        return
    bad = ~np.isfinite(pixels).all(axis=-1)
    if selection is not None:
        bad &= np.asarray(selection) > 0
    if bad.any():
        y, x = np.argwhere(bad)[0]
        raise RegionError(non_finite_sentence(int(bad.sum()), (int(x) + offset[0],
                                                               int(y) + offset[1]), where))


def _as_layer(layer: np.ndarray) -> np.ndarray:
    arr = np.asarray(layer)
    if arr.ndim != 3 or arr.shape[2] != 4:
        raise RegionError(f"a layer is an H×W×4 array, got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise RegionError("the layer is empty")
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / np.float32(255)
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / np.float32(65535)
    return arr.astype(np.float32, copy=False)


def _as_mask(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    arr = np.asarray(mask)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.shape != (height, width):
        raise RegionError(f"mask shape {arr.shape} does not match the layer's {(height, width)}")
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / np.float32(255)
    if arr.dtype == np.bool_:
        return arr.astype(np.float32)
    out = np.nan_to_num(arr.astype(np.float32, copy=False), nan=0.0)
    return np.clip(out, 0.0, 1.0)


def _nonzero_box(mask: np.ndarray) -> Box | None:
    positive = mask > 0
    rows = np.flatnonzero(positive.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(positive[rows[0]:rows[-1] + 1].any(axis=0))
    return Box.from_corners(cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)


def _model_rgb(pixels: np.ndarray, transfer: str, background_rgb: Sequence[float]) -> np.ndarray:
    """Composite straight-alpha pixels onto the background and sRGB-encode, in [0, 1].

    Compositing happens in the layer's own transfer (as the painting app blends it), so a
    linear layer is blended in linear light and encoded afterwards.
    """
    alpha = np.clip(pixels[..., 3:4], 0.0, 1.0)
    background = np.asarray(background_rgb, dtype=np.float32).reshape(3)
    if transfer == "linear":
        background = srgb_to_linear(background)
    comp = pixels[..., :3] * alpha
    comp += background * (np.float32(1.0) - alpha)
    np.nan_to_num(comp, copy=False, nan=0.0, posinf=1.0, neginf=0.0)  # NaN/inf garbage
    np.clip(comp, 0.0, 1.0, out=comp)
    if transfer == "linear":
        comp = np.clip(linear_to_srgb(comp), 0.0, 1.0)
    return comp


def frame_region(
    layer: np.ndarray,
    mask: np.ndarray | None = None,
    *,
    framing: Framing | Mapping[str, Any] | None,
    resolution: int,
    transfer: Transfer = "srgb",
    offset: tuple[int, int] = (0, 0),
    background_rgb: Sequence[float] = (1.0, 1.0, 1.0),
    fmt: str = "rgba8",
    selection_box: Box | Sequence[int] | None = None,
    kernel: Kernel = "bilinear",
) -> FramedRegion:
    """Frame a selection of a layer crop for the model.

    Args:
        layer: H×W×4 float32 in [0, 1] in the source transfer (uint8/uint16 arrays are
            scaled). Usually the context crop a plugin sent, not the whole canvas.
        mask: H×W selection (float in [0, 1], or a8 uint8), soft edges included. None: the
            whole layer is the region, framed by its bounding square (centred) whatever the
            framing says.
        framing: the pack's framing (or its manifest dict); None = pad.
        resolution: the model's input side R.
        transfer: "srgb" or "linear", the layer's transfer.
        offset: where ``layer[0, 0]`` sits in the document; every returned box is in
            document coordinates.
        background_rgb: sRGB-encoded colour transparent pixels are composited onto.
        fmt: the layer's wire format, echoed into the patch.
        selection_box: optional selection bounds (document coordinates) the plugin used for
            :func:`protocol.regions.context_box`, so the engine frames exactly the same
            square. It is widened to hold the mask's tight box if it does not.
        kernel: the downscale filter (antialiased).

    Raises:
        RegionError: empty selection, bad shapes or formats.
    """
    _check_transfer(transfer)
    _format(fmt)
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution <= 0:
        raise RegionError(f"resolution must be a positive int, got {resolution!r}")
    framing = Framing.from_dict(framing)
    pixels = _as_layer(layer)
    height, width = pixels.shape[:2]
    ox, oy = int(offset[0]), int(offset[1])

    if mask is None:
        selection = None
        tight = Box(0, 0, width, height)
        sel_doc = tight.translate(ox, oy)
        side = max(width, height)
        square = Box(ox + (width - side) // 2, oy + (height - side) // 2, side, side)
    else:
        selection = _as_mask(mask, height, width)
        found = _nonzero_box(selection)
        if found is None:
            raise RegionError("the selection is empty")
        tight = found
        sel_doc = tight.translate(ox, oy)
        if selection_box is not None:
            sel_doc = Box.of(selection_box).union(sel_doc)
        sx, sy, side = framing.square(sel_doc)
        square = Box(sx, sy, side, side)

    # The model square in crop coordinates, and the part of it we have pixels for.
    qx, qy, side = square.x - ox, square.y - oy, square.w
    have = Box(qx, qy, side, side).intersect(Box(0, 0, width, height))
    if have.empty:  # cannot happen for the built-in framings; guard future ones
        raise RegionError("the model square does not overlap the layer")

    res = resolution
    step = side / res  # layer pixels per frame pixel
    centres = (np.arange(res, dtype=np.float64) + 0.5) * step
    cx, cy = centres + qx, centres + qy
    spans = ((qx, qx + side), (qy, qy + side))
    mx = _resample_matrix(cx, step, spans[0], (have.x, have.x1), kernel, replicate=True)
    my = _resample_matrix(cy, step, spans[1], (have.y, have.y1), kernel, replicate=True)
    sub = pixels[have.y:have.y1, have.x:have.x1]
    rgb = _model_rgb(sub, transfer, background_rgb)
    frame = np.clip(_apply_separable(my, mx, rgb), 0.0, 1.0)
    image = torch.from_numpy(frame).permute(2, 0, 1).unsqueeze(0).mul(2.0).sub(1.0).contiguous()

    # The selection in the frame: zero off the crop (no replication), bilinear.
    mmx = _resample_matrix(cx, step, spans[0], (have.x, have.x1), "bilinear", replicate=False)
    mmy = _resample_matrix(cy, step, spans[1], (have.y, have.y1), "bilinear", replicate=False)
    if selection is None:
        sel_sub = np.ones((have.h, have.w, 1), dtype=np.float32)
    else:
        sel_sub = selection[have.y:have.y1, have.x:have.x1, None]
    frame_mask = np.clip(_apply_separable(mmy, mmx, sel_sub)[..., 0], 0.0, 1.0)
    mask_t = torch.from_numpy(np.ascontiguousarray(frame_mask))[None, None]

    original = pixels[tight.y:tight.y1, tight.x:tight.x1].copy()
    sel_patch = None if selection is None else selection[tight.y:tight.y1, tight.x:tight.x1].copy()
    edges = (tight.x == 0, tight.y == 0, tight.x1 == width, tight.y1 == height)
    return FramedRegion(
        image=image,
        mask=mask_t,
        square=square,
        transform=FrameTransform.for_square(square.x, square.y, square.w),
        resolution=res,
        selection_box=sel_doc,
        patch_box=tight.translate(ox, oy),
        original=original,
        selection=sel_patch,
        selection_edges=edges,
        transfer=transfer,
        fmt=fmt,
    )


# --------------------------------------------------------------------------- paste-back


@dataclass
class Patch:
    """An edited patch: straight-alpha pixels in the source transfer, placed in the document.

    ``pixels`` is h×w×4 float32; ``offset`` is its top-left in document coordinates.
    Wherever alpha is 0 the RGB is 0 too.
    """

    pixels: np.ndarray
    offset: tuple[int, int]
    fmt: str
    transfer: str = "srgb"

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def box(self) -> Box:
        return Box(self.offset[0], self.offset[1], self.width, self.height)

    def encode(self) -> bytes:
        """The pixels in the source layer's wire format."""
        return encode_pixels(self.pixels, self.fmt)

    def encoded_array(self) -> np.ndarray:
        """The pixels quantised to the format's dtype (what :meth:`encode` sends)."""
        return _quantise(self.pixels, _format(self.fmt))


def _as_frame_hwc(tensor: torch.Tensor | np.ndarray, resolution: int, name: str) -> np.ndarray:
    t = tensor.detach().to("cpu", torch.float32).numpy() if isinstance(
        tensor, torch.Tensor) else np.asarray(tensor, dtype=np.float32)
    if t.ndim == 4:
        if t.shape[0] != 1:
            raise RegionError(f"{name} must hold one image, got batch {t.shape[0]}")
        t = t[0]
    if t.shape != (3, resolution, resolution):
        raise RegionError(f"{name} must be [1, 3, {resolution}, {resolution}], got {t.shape}")
    return np.ascontiguousarray(t.transpose(1, 2, 0))


def _within_source_range(rgb: np.ndarray, orig_rgb: np.ndarray) -> np.ndarray:
    """Results in [0, 1], but never clip an original (HDR float) value."""
    if orig_rgb.min() >= 0.0 and orig_rgb.max() <= 1.0:
        return np.clip(rgb, 0.0, 1.0)
    return np.clip(rgb, np.minimum(orig_rgb, 0.0), np.maximum(orig_rgb, 1.0))


def fit_colour_map(source: np.ndarray, target: np.ndarray, weights: np.ndarray,
                   ridge: float = 1e-3) -> np.ndarray:
    """The affine colour map (``[4, 3]``: RGB and 1 -> RGB) that takes ``source`` pixels to
    ``target`` pixels (both H×W×3 in [0, 1]) in weighted least squares, pulled towards the
    identity by ``ridge`` (a share of the total weight), so that colours the region lacks
    are left nearly alone."""
    x = np.concatenate([source.reshape(-1, 3), np.ones((source[..., 0].size, 1))], axis=1)
    y = target.reshape(-1, 3)
    w = np.clip(weights.reshape(-1, 1), 0.0, None).astype(np.float64)
    identity = np.vstack([np.eye(3), np.zeros((1, 3))])
    lam = ridge * max(float(w.sum()), 1e-6)
    lhs = x.T @ (w * x) + lam * np.eye(4)
    rhs = x.T @ (w * y) + lam * identity
    return np.linalg.solve(lhs, rhs)


def background_colour(frame: torch.Tensor) -> np.ndarray:
    """The sRGB colour (3, in [0, 1]) of a framed image's (``[1, 3, R, R]`` in [-1, 1])
    background: the median of its border ring, where a framed object never reaches."""
    f = frame.detach().to("cpu", torch.float32)[0]
    ring = torch.cat([f[:, 0, :], f[:, -1, :], f[:, 1:-1, 0], f[:, 1:-1, -1]], dim=-1)
    return ((ring.median(dim=-1).values + 1.0) * 0.5).numpy()


def object_weight(rgb: np.ndarray, background: np.ndarray, near: float = 0.075,
                  far: float = 0.2) -> np.ndarray:
    """Per pixel of ``rgb`` (H×W×3 sRGB in [0, 1]), how far it is from ``background``
    (RGB distance): 0 within ``near`` (the background's own shading and noise), 1 from
    ``far`` on, linear between (an anti-aliased outline is partly both)."""
    distance = np.linalg.norm(np.nan_to_num(rgb) - background, axis=-1)
    return np.clip((distance - near) / (far - near), 0.0, 1.0).astype(np.float32)


def apply_colour_map(rgb: np.ndarray, colour_map: np.ndarray) -> np.ndarray:
    """``rgb`` (…×3) through :func:`fit_colour_map`'s map."""
    return (rgb @ colour_map[:3] + colour_map[3]).astype(np.float32)


def _feather_inward(selection: np.ndarray, radius: float, edges: tuple[bool, ...]) -> np.ndarray:
    """Soften the selection's edge inward over about ``radius`` px; never grows it.

    ``min(mask, gaussian_blur(mask, σ = radius/2))``: at a hard edge alpha steps to about
    half and reaches ~98% ``radius`` px inside; outside the selection it stays 0. (An
    erode-then-blur ramp would start from 0 but turns speckled masks, where every hole is
    an edge, mostly transparent.) Sides flagged in ``edges`` are the crop's edge, not the
    selection's, so the mask is extended there by replication instead of zeros.
    """
    sigma = radius / 2.0
    pad = math.ceil(3.0 * sigma) + 1
    left, top, right, bottom = edges
    replicated = np.pad(
        selection,
        ((pad if top else 0, pad if bottom else 0), (pad if left else 0, pad if right else 0)),
        mode="edge",
    )
    padded = np.pad(
        replicated,
        ((0 if top else pad, 0 if bottom else pad), (0 if left else pad, 0 if right else pad)),
        mode="constant",
    )
    blurred = ndimage.gaussian_filter(padded, sigma=sigma, mode="nearest", truncate=3.0)
    h, w = selection.shape
    return np.minimum(selection, blurred[pad:pad + h, pad:pad + w]).astype(np.float32)


def _frame_to_patch(framed: FramedRegion, kernel: Kernel
                    ) -> tuple[Any, np.ndarray | None]:
    """``(to_patch, coverage)``: ``to_patch(frame, detail=None)`` resamples an R x R x C
    frame image onto the patch box's pixels through the inverse of the frame's transform;
    ``coverage`` (h x w in [0, 1], None for an axis-aligned frame, which covers the whole
    box) is how far each patch pixel lies inside the frame.

    An axis-aligned square maps with separable sparse matrices (``kernel``, antialiased);
    ``detail`` is not used. A rotated one (a face's FFHQ square) samples bilinearly at each
    pixel's preimage; where the frame is finer than the document (a 1024 px frame over a
    300 px face) ``frame`` is first shrunk (antialiased) to about the document's scale, so
    a render does not alias, and ``detail`` (the frame the method was given) adds back what
    that shrink takes from the user's own pixels: ``shrunk(frame) + sampled(detail) -
    shrunk(detail)``. So the frame itself comes back as the pixels it was made of (0.45 of
    255 on average for a face at 1024 px), and a render as itself at the document's
    resolution."""
    res = framed.resolution
    box, square = framed.patch_box, framed.square
    if framed.transform.axis_aligned:
        scale = res / square.w  # frame pixels per layer pixel
        cx = (np.arange(box.w, dtype=np.float64) + (box.x - square.x) + 0.5) * scale
        cy = (np.arange(box.h, dtype=np.float64) + (box.y - square.y) + 0.5) * scale
        mx = _resample_matrix(cx, scale, (0, res), (0, res), kernel, replicate=True)
        my = _resample_matrix(cy, scale, (0, res), (0, res), kernel, replicate=True)
        return (lambda frame, detail=None: _apply_separable(my, mx, frame)), None
    t = framed.transform
    ys, xs = np.mgrid[box.y:box.y1, box.x:box.x1].astype(np.float64) + 0.5
    u = t.a * xs - t.b * ys + t.tx  # normalised frame coordinates of each pixel centre
    v = t.b * xs + t.a * ys + t.ty
    per_pixel = t.scale * res  # frame pixels per document pixel
    side = res if per_pixel <= 1.0 else max(2, round(res / per_pixel))
    coverage = np.clip(np.minimum.reduce([u, 1.0 - u, v, 1.0 - v]) * side / 1.5, 0.0, 1.0)

    def sample(frame: np.ndarray, size: int) -> np.ndarray:
        image = torch.from_numpy(np.ascontiguousarray(frame.transpose(2, 0, 1)))[None]
        if size != res:
            image = torch.nn.functional.interpolate(image, size=(size, size), mode="bilinear",
                                                    align_corners=False, antialias=True)
        small = image[0].numpy()
        coords = np.stack([v * size - 0.5, u * size - 0.5])
        return np.stack([ndimage.map_coordinates(small[c], coords, order=1, mode="nearest")
                         for c in range(small.shape[0])], axis=-1).astype(np.float32)

    def to_patch(frame: np.ndarray, detail: np.ndarray | None = None) -> np.ndarray:
        out = sample(frame, side)
        if detail is not None and side != res:
            out += sample(detail, res) - sample(detail, side)
        return out

    return to_patch, coverage.astype(np.float32)


def paste_back(
    framed: FramedRegion,
    edited: torch.Tensor,
    *,
    inversion: torch.Tensor | None = None,
    mode: Literal["render", "delta", "colour"] = "render",
    feather: float = 0.0,
    kernel: Kernel = "bicubic",
    keep_background: bool = False,
) -> Patch:
    """Turn the model's edited frame into a patch over the selection's tight box.

    Modes:
        ``render``: the edited render, resized to the square's pixel size (only the patch
            box is computed), replaces the selection.
        ``delta``: ``original + resize(edited − inversion)`` — the change the edit made to
            the model's reconstruction is added to the full-resolution original, so a 64-px
            model does not blur a large selection and inversion error does not halo around
            a recolour. For linear layers the delta is applied in sRGB and the resulting
            change in linear light added: ``orig + (lin(srgb(orig) + d) − lin(srgb(orig)))``,
            which is exactly ``orig`` where ``d`` is 0.
        ``colour``: the user's pixels through the colour map the edit applied to the
            model's reconstruction (:func:`fit_colour_map`, fitted over the selection in the
            frame). A recolour then reaches every pixel of the object's colour, also those
            the inversion missed (a star's points), and keeps the user's outline exactly.

    ``keep_background``: the user's background stays theirs. ``delta`` and ``colour``
    weight the change by :func:`object_weight` of the original's pixels, so those of the
    frame's background colour keep their own; ``render`` lays the render's object (its
    pixels away from the render's own background colour) over the original, where the
    user's object was filled with their background's colour. Edits shift the whole frame's
    colour a little with the object's, and without this a loose selection shows as a tinted
    box around it.

    Alpha is the selection (feathered inward by ``feather`` px if > 0) × the source alpha,
    × how far the pixel lies inside a rotated frame (a face's): outside it nothing was
    edited. Where it is 0, RGB is 0 too. Where the selection is 0 alpha is exactly 0.
    """
    if mode not in ("render", "delta", "colour"):
        raise RegionError(f"unknown paste mode {mode!r}")
    if mode != "render" and inversion is None:
        raise RegionError(f"{mode} paste needs the inversion (the unedited render)")
    res = framed.resolution
    to_patch, coverage = _frame_to_patch(framed, kernel)
    original = framed.original
    orig_rgb = original[..., :3]
    linear = framed.transfer == "linear"

    edit = _as_frame_hwc(edited, res, "edited")
    rendered = None  # the render in sRGB (render mode)
    if mode == "render":
        frame = _as_frame_hwc(framed.image, res, "frame")
        rendered = np.clip(to_patch((edit + 1.0) * 0.5, (frame + 1.0) * 0.5), 0.0, 1.0)
        rgb = srgb_to_linear(rendered) if linear else rendered
    elif mode == "colour":
        assert inversion is not None
        inv = _as_frame_hwc(inversion, res, "inversion")
        weights = framed.mask.detach().to("cpu", torch.float32).numpy().reshape(res, res)
        colour_map = fit_colour_map((inv + 1.0) * 0.5, (edit + 1.0) * 0.5, weights)
        enc = linear_to_srgb(orig_rgb) if linear else orig_rgb
        mapped = apply_colour_map(enc, colour_map)
        rgb = _within_source_range(
            srgb_to_linear(np.clip(mapped, 0.0, None)) if linear else mapped, orig_rgb)
    else:
        assert inversion is not None
        inv = _as_frame_hwc(inversion, res, "inversion")
        delta = to_patch((edit - inv) * np.float32(0.5))
        if linear:
            enc = linear_to_srgb(orig_rgb)
            rgb = orig_rgb + (srgb_to_linear(enc + delta) - srgb_to_linear(enc))
        else:
            rgb = orig_rgb + delta
        rgb = _within_source_range(rgb, orig_rgb)

    if keep_background:
        enc = linear_to_srgb(orig_rgb) if linear else orig_rgb
        background = background_colour(framed.image)
        users_object = object_weight(enc, background)[..., None]
        if rendered is not None:
            # the render's object over the user's background: their own pixels where they
            # show the background, its colour where their object was
            drawn = object_weight(rendered, background_colour(edited))[..., None]
            fill = srgb_to_linear(background) if linear else background
            base = orig_rgb + users_object * (fill - orig_rgb)
            rgb = base + drawn * (rgb - base)
        else:
            rgb = orig_rgb + users_object * (rgb - orig_rgb)

    src_alpha = np.clip(np.nan_to_num(original[..., 3], nan=0.0), 0.0, 1.0)
    if framed.selection is None:
        alpha = src_alpha
    else:
        selection = framed.selection
        if feather > 0:
            selection = _feather_inward(selection, float(feather), framed.selection_edges)
        alpha = np.where(selection > 0, selection * src_alpha, 0.0)
    if coverage is not None:  # a rotated frame covers part of the box: the rest stays
        alpha = alpha * coverage
    box = framed.patch_box
    pixels = np.empty((box.h, box.w, 4), dtype=np.float32)
    pixels[..., :3] = rgb
    pixels[..., 3] = alpha
    pixels[alpha <= 0] = 0.0  # alpha 0 ⇒ RGB 0 (and -0.0/NaN-free alpha)
    return Patch(pixels=pixels, offset=(box.x, box.y), fmt=framed.fmt, transfer=framed.transfer)


def merge_patches(patches: Sequence[Patch]) -> Patch:
    """One patch of several (the faces of one selection): their boxes' union, each later
    patch's pixels over the earlier ones' where its alpha is above 0, alpha 0 elsewhere."""
    if not patches:
        raise RegionError("nothing to merge")
    if len(patches) == 1:
        return patches[0]
    box = patches[0].box
    for patch in patches[1:]:
        box = box.union(patch.box)
    pixels = np.zeros((box.h, box.w, 4), dtype=np.float32)
    for patch in patches:
        x, y = patch.offset[0] - box.x, patch.offset[1] - box.y
        target = pixels[y:y + patch.height, x:x + patch.width]
        drawn = patch.pixels[..., 3] > 0
        target[drawn] = patch.pixels[drawn]
    first = patches[0]
    return Patch(pixels=pixels, offset=(box.x, box.y), fmt=first.fmt, transfer=first.transfer)


# --------------------------------------------------------------------------- compositing


_DTYPE_FORMATS = {np.dtype("u1"): "rgba8", np.dtype("<u2"): "rgba16"}


def composite_over(
    original: np.ndarray, patch: Patch, *, offset: tuple[int, int] = (0, 0)
) -> np.ndarray:
    """Composite ``patch`` over ``original`` ("over", straight alpha) and return a new array.

    ``original`` is H×W×4, either decoded float or the raw encoded array (uint8 / uint16,
    e.g. from :func:`decode_raw`); ``offset`` is its top-left in the document. Integer
    originals are composited against the patch quantised to the same dtype and the result
    requantised. Wherever the (quantised) patch alpha is 0 the original is copied bit for
    bit; where it is full the patch replaces it exactly. Blending happens in the layer's
    transfer, as in the painting app.
    """
    orig = np.asarray(original)
    if orig.ndim != 3 or orig.shape[2] != 4:
        raise RegionError(f"original must be H×W×4, got {orig.shape}")
    out = orig.copy()
    ox, oy = int(offset[0]), int(offset[1])
    height, width = orig.shape[:2]
    region = patch.box.intersect(Box(ox, oy, width, height))
    if region.empty:
        return out
    o_slice = (slice(region.y - oy, region.y1 - oy), slice(region.x - ox, region.x1 - ox))
    p_slice = (
        slice(region.y - patch.offset[1], region.y1 - patch.offset[1]),
        slice(region.x - patch.offset[0], region.x1 - patch.offset[0]),
    )
    o_raw = orig[o_slice]
    p_pix = patch.pixels[p_slice]

    if np.issubdtype(orig.dtype, np.integer):
        fmt = _DTYPE_FORMATS.get(orig.dtype)
        if fmt is None:
            raise RegionError(f"unsupported original dtype {orig.dtype}")
        spec: _Format | None = _format(fmt)
        assert spec is not None and spec.scale is not None
        p_raw = _quantise(p_pix, spec)
        o = o_raw.astype(np.float32) / np.float32(spec.scale)
        p = p_raw.astype(np.float32) / np.float32(spec.scale)
        full = p_raw[..., 3:4] == np.iinfo(orig.dtype).max
    else:
        spec = None
        p_raw = p_pix.astype(orig.dtype)
        o, p = o_raw, p_raw
        full = p_raw[..., 3:4] >= 1.0
    blank = p_raw[..., 3:4] == 0
    pa = p[..., 3:4]
    weight = np.clip(o[..., 3:4], 0.0, 1.0) * (1.0 - pa)
    out_a = pa + weight
    rgb = p[..., :3] * pa
    rgb += o[..., :3] * weight
    np.divide(rgb, out_a, out=rgb, where=out_a > 0)  # out_a == 0 → rgb is already 0
    blended = np.concatenate([rgb, out_a], axis=2)
    blended = _quantise(blended, spec) if spec is not None else blended.astype(orig.dtype)
    blended = np.where(full, p_raw, blended)  # opaque patch pixels replace exactly
    out[o_slice] = np.where(blank, o_raw, blended)  # alpha-0 pixels keep the original's bits
    return out



def preview_image(layer: np.ndarray, transfer: str, patch: Patch, offset: tuple[int, int],
                  max_side: int) -> np.ndarray:
    """A live preview for display: ``patch`` composited over the decoded ``layer`` crop
    (H×W×4 float, its top-left at ``offset``), in sRGB, scaled to fit ``max_side`` (never
    enlarged): an H'×W'×4 uint8 array, straight alpha."""
    _check_transfer(transfer)
    out = composite_over(np.asarray(layer, dtype=np.float32), patch, offset=offset)
    out = np.clip(np.nan_to_num(out, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
    if transfer == "linear":
        out[..., :3] = linear_to_srgb(out[..., :3])
    height, width = out.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    if scale < 1.0:
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        tensor = torch.from_numpy(np.ascontiguousarray(out)).permute(2, 0, 1)[None]
        # premultiplied, so transparent pixels' colour does not bleed into the edges
        tensor = torch.cat([tensor[:, :3] * tensor[:, 3:], tensor[:, 3:]], dim=1)
        tensor = torch.nn.functional.interpolate(tensor, size=size, mode="bilinear",
                                                 antialias=True, align_corners=False)
        alpha = tensor[:, 3:].clamp(0, 1)
        rgb = torch.where(alpha > 0, tensor[:, :3] / alpha.clamp_min(1e-6),
                          torch.zeros_like(tensor[:, :3]))
        out = torch.cat([rgb, alpha], dim=1)[0].permute(1, 2, 0).numpy()
    return np.ascontiguousarray(np.round(np.clip(out, 0.0, 1.0) * 255.0).astype(np.uint8))


# --------------------------------------------------------------------------- metrics


def inversion_psnr(
    framed_tensor: torch.Tensor | np.ndarray,
    inversion_tensor: torch.Tensor | np.ndarray,
    mask: torch.Tensor | np.ndarray | None = None,
) -> float:
    """PSNR in dB between two [N, 3, R, R] images in [-1, 1], measured on the [0, 1] scale.

    With ``mask`` ([N, 1, R, R] or [R, R], in [0, 1]) the squared error is mask-weighted.
    Identical images give ``inf``.
    """
    # on the inversion's device, in float32 with a float64 sum: at 1024 px a float64 copy of
    # both images on the CPU took longer than the GPU's whole edit
    b = torch.as_tensor(inversion_tensor).detach()
    a = torch.as_tensor(framed_tensor).detach().to(b.device, torch.float32)
    b = b.to(torch.float32)
    if a.shape != b.shape:
        raise RegionError(f"shape mismatch: {tuple(a.shape)} vs {tuple(b.shape)}")
    a = a.add(1.0).mul_(0.5).clamp_(0.0, 1.0)
    b = b.add(1.0).mul_(0.5).clamp_(0.0, 1.0)
    err = a.sub_(b).square_()
    if mask is None:
        mse = float(err.sum(dtype=torch.float64)) / err.numel()
    else:
        m = torch.as_tensor(mask).detach().to(err.device, torch.float32)
        while m.dim() < err.dim():
            m = m.unsqueeze(0)
        m = m.expand(err.shape[0], 1, *err.shape[-2:])
        weight = float(m.sum(dtype=torch.float64)) * err.shape[1]
        if weight <= 0:
            raise RegionError("the selection is empty")
        mse = float((err * m).sum(dtype=torch.float64)) / weight
    if mse <= 0.0:
        return math.inf
    return 10.0 * math.log10(1.0 / mse)
