"""Krita's pixel layouts <-> the wire formats (pure Python: Krita's Python has no numpy).

| Krita depth | bytes/px | channel order | wire format | transfer |
|---|---|---|---|---|
| U8  | 4  | BGRA           | rgba8   | from the profile |
| U16 | 8  | BGRA (uint16)  | rgba16  | from the profile |
| F16 | 8  | RGBA (half)    | rgbaf16 | from the profile |
| F32 | 16 | RGBA (float32) | rgbaf32 | from the profile |

Byte swaps use extended slice assignment on ``bytearray``/``array`` (C speed). Float layers
go as they are (half floats as ``rgbaf16``: widening them here, in pure Python, took
seconds of the UI thread for a large layer; the engine reads them with numpy). Everything
here is exact.
"""

from __future__ import annotations

import sys
from array import array
from dataclasses import dataclass

__all__ = ["DEPTHS", "Layout", "UnsupportedImage", "from_wire", "layout_for", "to_wire",
           "transfer_for"]


class UnsupportedImage(ValueError):
    """A colour model or depth the plugin does not edit (the message says what to do)."""


@dataclass(frozen=True)
class Layout:
    depth: str
    bytes_per_pixel: int
    wire_format: str
    bgra: bool


DEPTHS: dict[str, Layout] = {
    "U8": Layout("U8", 4, "rgba8", True),
    "U16": Layout("U16", 8, "rgba16", True),
    "F16": Layout("F16", 8, "rgbaf16", False),
    "F32": Layout("F32", 16, "rgbaf32", False),
}


def layout_for(color_model: str, depth: str) -> Layout:
    if color_model != "RGBA":
        raise UnsupportedImage(
            f"wordbrush edits RGB images; this document is {color_model}/{depth}. Convert it "
            "with Image > Convert Image Color Space… (RGB/Alpha), or edit a copy.")
    layout = DEPTHS.get(depth)
    if layout is None:
        raise UnsupportedImage(f"unsupported channel depth {depth!r} (8-bit, 16-bit, 16-bit "
                               "float and 32-bit float RGBA are supported)")
    return layout


def transfer_for(profile: str) -> str:
    """``linear`` for linear-light profiles (Krita's default for float, "…g10…"), else srgb."""
    name = profile.lower()
    if "g10" in name or "linear" in name or "scrgb" in name:
        return "linear"
    return "srgb"


def _swap_rb(data: bytes | bytearray, item: str) -> bytes:
    """Swap channels 0 and 2 of every 4-channel pixel (BGRA <-> RGBA)."""
    if item == "B":
        src = bytes(data)
        out = bytearray(src)
        out[0::4] = src[2::4]
        out[2::4] = src[0::4]
        return bytes(out)
    src_a = array(item)
    src_a.frombytes(bytes(data))
    out_a = array(item, src_a)
    out_a[0::4] = src_a[2::4]
    out_a[2::4] = src_a[0::4]
    return out_a.tobytes()


def _check_len(data: bytes | bytearray, width: int, height: int, bpp: int) -> None:
    if len(data) != width * height * bpp:
        raise ValueError(f"expected {width}×{height}×{bpp} bytes, got {len(data)}")


def to_wire(data: bytes | bytearray, width: int, height: int, layout: Layout) -> bytes:
    """Krita pixel bytes -> the wire format's bytes (little-endian, RGBA order)."""
    _check_len(data, width, height, layout.bytes_per_pixel)
    if sys.byteorder != "little":
        raise UnsupportedImage("big-endian machines are not supported")
    if layout.depth == "U8":
        return _swap_rb(data, "B")
    if layout.depth == "U16":
        return _swap_rb(data, "H")
    return bytes(data)


def from_wire(data: bytes | bytearray, width: int, height: int, layout: Layout) -> bytes:
    """The wire format's bytes -> Krita pixel bytes for ``layout`` (inverse of to_wire)."""
    _check_len(data, width, height, layout.bytes_per_pixel)
    if layout.depth == "U8":
        return _swap_rb(data, "B")
    if layout.depth == "U16":
        return _swap_rb(data, "H")
    return bytes(data)
