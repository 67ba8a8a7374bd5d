"""Non-finite values in float pixels, found without numpy (vendored into the editors).

Float layers from real documents can hold NaN or infinite values (HDR work, a broken
filter). The rule, the same in every client and in the engine: such a pixel inside the
selection makes the request invalid (a sentence with how many and where the first is);
outside the selection it is ignored (the model sees it as 0, the result never covers it).

A float is non-finite exactly when its exponent bits are all ones, so the scan reads the
exponent's bytes with C-speed slicing and ``bytes.translate``, and combines them as big
integers: a 4096 x 4096 float layer takes well under a second in pure Python.
"""

from __future__ import annotations

__all__ = ["FLOAT_FORMATS", "non_finite_pixels", "non_finite_sentence"]

#: wire format -> (bytes per channel value); little-endian IEEE 754 half and single
FLOAT_FORMATS = {"rgbaf16": 2, "rgbaf32": 4}

CHANNELS = 4


def _table(test: object) -> bytes:
    return bytes(1 if test(b) else 0 for b in range(256))  # type: ignore[operator]


# half: sign 1, exponent 5, mantissa 10; the high byte holds the exponent's five bits
_HALF_HIGH = _table(lambda b: b & 0x7C == 0x7C)
# single: the top byte holds seven exponent bits, the next byte's top bit the eighth
_SINGLE_TOP = _table(lambda b: b & 0x7F == 0x7F)
_SINGLE_NEXT = _table(lambda b: b & 0x80 == 0x80)
_NONZERO = _table(lambda b: b != 0)


def _flags(data: bytes | bytearray | memoryview, size: int) -> int:
    """A big integer whose byte ``i`` is 1 where channel value ``i`` is non-finite."""
    raw = bytes(data)
    if size == 2:
        return int.from_bytes(raw[1::2].translate(_HALF_HIGH), "little")
    top = int.from_bytes(raw[3::4].translate(_SINGLE_TOP), "little")
    return top & int.from_bytes(raw[2::4].translate(_SINGLE_NEXT), "little")


def non_finite_pixels(data: bytes | bytearray | memoryview, fmt: str, width: int,
                      height: int, mask: bytes | bytearray | memoryview | None = None
                      ) -> tuple[int, tuple[int, int] | None]:
    """``(count, (x, y) of the first)``: pixels of a ``fmt`` buffer with a NaN or infinite
    value in any channel, where ``mask`` (a8, same size; None: everywhere) is above 0.
    Integer formats hold none: ``(0, None)``."""
    size = FLOAT_FORMATS.get(fmt)
    if size is None or width <= 0 or height <= 0:
        return 0, None
    values = _flags(data, size)
    if not values:
        return 0, None
    n = width * height
    flags = values.to_bytes(n * CHANNELS, "little")
    # a pixel is bad if any of its four channels is
    pixels = 0
    for channel in range(CHANNELS):
        pixels |= int.from_bytes(flags[channel::CHANNELS], "little")
    if mask is not None:
        pixels &= int.from_bytes(bytes(mask).translate(_NONZERO), "little")
    if not pixels:
        return 0, None
    first = ((pixels & -pixels).bit_length() - 1) // 8
    return pixels.bit_count(), (first % width, first // width)


def non_finite_sentence(count: int, first: tuple[int, int], where: str) -> str:
    """The refusal, the same from every client and the engine; ``first`` in document
    coordinates, ``where`` e.g. "inside the selection"."""
    pixels, hold = ("pixel", "holds") if count == 1 else ("pixels", "hold")
    return (f"{count} {pixels} {where} {hold} NaN or infinite values (the first at "
            f"{first[0]},{first[1]}): repaint them or clear them with a filter, or select "
            "around them; nothing was sent to the model")
