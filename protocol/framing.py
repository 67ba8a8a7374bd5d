"""The one framing module: how a wordbrush message becomes ZeroMQ frames and back.

A message on the wire is a ZeroMQ multipart message::

    [routing ids...]  (ROUTER side only; never seen by this module)
    b"WB" + version   (3 bytes: magic and protocol version)
    msgpack header    (a map, at most ``Limits.max_header_bytes``)
    raw buffers...    (one frame per entry of header["buffers"], in order)

Pixel buffers never travel inside msgpack: they are raw frames, sent with
``copy=False`` and received zero-copy, so a 4096x4096 layer costs no serialisation.

The header holds ``v`` (version), ``type``, ``id`` (a uuid hex: the idempotency key of a
request), ``ref`` (the id of the request a reply answers), ``body`` (the type's fields,
see :mod:`protocol.messages`) and ``buffers``: for every raw frame its ``name``,
``width``, ``height``, ``format``, ``nbytes`` and optional ``transfer`` (``srgb`` or
``linear``). ``nbytes`` must equal both the frame's length and width*height*bpp.

Between a client and a local engine that agreed on shared memory (see :mod:`protocol.shm`),
a buffer entry may instead carry ``shm``: its position in the sender's ring. Such a buffer
has no frame; :func:`decode` resolves it to a view of the ring, or refuses it when the
connection has no ring.

Decoding validates everything against :class:`Limits` and raises only subclasses of
:class:`protocol.errors.ProtocolError`. Unknown header fields are ignored, so a newer
peer may add fields without breaking an older one.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgpack

from .errors import LimitExceeded, ProtocolError, SharedMemoryUnknown, UnsupportedVersion

if TYPE_CHECKING:
    from .shm import RingReader

MAGIC = b"WB"
PROTOCOL_VERSION = 1
MAGIC_FRAME = MAGIC + bytes([PROTOCOL_VERSION])

#: bytes per pixel of every pixel format the protocol knows
FORMATS: dict[str, int] = {"rgba8": 4, "rgba16": 8, "rgbaf16": 8, "rgbaf32": 16, "a8": 1}
TRANSFERS = ("srgb", "linear")


@dataclass(frozen=True)
class Limits:
    """Size limits. The engine advertises its own in ``welcome``; both sides enforce them."""

    max_header_bytes: int = 64 * 1024
    max_buffers: int = 16
    max_frame_bytes: int = 256 * 1024 * 1024
    max_side: int = 8192
    max_prompt_chars: int = 1000
    max_variations: int = 8
    max_preview_side: int = 256
    # msgpack container caps: a small header can otherwise expand enormously
    max_str_len: int = 64 * 1024
    max_array_len: int = 4096
    max_map_len: int = 1024

    @property
    def max_frames(self) -> int:
        """Frames after the routing ids: magic + header + buffers."""
        return 2 + self.max_buffers

    def to_dict(self) -> dict[str, int]:
        return {
            "max_header_bytes": self.max_header_bytes,
            "max_buffers": self.max_buffers,
            "max_frame_bytes": self.max_frame_bytes,
            "max_side": self.max_side,
            "max_prompt_chars": self.max_prompt_chars,
            "max_variations": self.max_variations,
            "max_preview_side": self.max_preview_side,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Limits:
        known = {k: int(v) for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


DEFAULT_LIMITS = Limits()


def new_id() -> str:
    """A fresh message id (uuid4 hex)."""
    return uuid.uuid4().hex


@dataclass
class Buffer:
    """A raw pixel (or mask) buffer travelling beside the header.

    ``data`` is anything exposing the buffer protocol (bytes, bytearray, memoryview, a
    numpy array, a received ``zmq.Frame``'s ``.buffer``). Rows are top to bottom, pixels
    left to right, channels RGBA (or a single alpha byte for ``a8``).
    """

    name: str
    width: int
    height: int
    format: str
    data: Any
    transfer: str = "srgb"

    @property
    def bytes_per_pixel(self) -> int:
        return FORMATS[self.format]

    @property
    def expected_nbytes(self) -> int:
        return self.width * self.height * FORMATS[self.format]

    def spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "name": self.name,
            "width": self.width,
            "height": self.height,
            "format": self.format,
            "nbytes": _nbytes(self.data),
        }
        if self.format != "a8":
            spec["transfer"] = self.transfer
        return spec

    def tobytes(self) -> bytes:
        return bytes(memoryview(self.data).cast("B"))


@dataclass
class Message:
    """A decoded (or to-be-encoded) message. ``body`` holds the type's own fields."""

    type: str
    body: dict[str, Any] = field(default_factory=dict)
    buffers: list[Buffer] = field(default_factory=list)
    id: str = field(default_factory=new_id)
    ref: str | None = None
    version: int = PROTOCOL_VERSION

    def buffer(self, name: str) -> Buffer | None:
        for buf in self.buffers:
            if buf.name == name:
                return buf
        return None

    def buffers_named(self, prefix: str) -> list[Buffer]:
        return [b for b in self.buffers if b.name.startswith(prefix)]


def _nbytes(data: Any) -> int:
    return memoryview(data).nbytes


def encode(message: Message, limits: Limits = DEFAULT_LIMITS) -> list[Any]:
    """Frames for ``message`` (without routing ids), ready for ``send_multipart(copy=False)``.

    Buffers are passed through untouched (no copy); the caller must not mutate them
    until ZeroMQ has sent them.
    """
    for buf in message.buffers:
        check_buffer_spec(buf.spec(), limits)
    header = {
        "v": message.version,
        "type": message.type,
        "id": message.id,
        "ref": message.ref,
        "body": message.body,
        "buffers": [buf.spec() for buf in message.buffers],
    }
    packed = msgpack.packb(header, use_bin_type=True)
    if len(packed) > limits.max_header_bytes:
        raise LimitExceeded(
            f"the message header is {len(packed)} bytes; the limit is {limits.max_header_bytes}"
        )
    return [MAGIC_FRAME, packed, *(buf.data for buf in message.buffers)]


def frame_buffer(frame: Any) -> memoryview:
    """A memoryview of a frame, whatever pyzmq gave us (bytes, Frame, memoryview, array)."""
    buffer = getattr(frame, "buffer", None)
    return buffer if buffer is not None else memoryview(frame)


def _frame_view(frame: Any) -> memoryview:
    """:func:`frame_buffer` as flat bytes."""
    view = frame_buffer(frame)
    return view.cast("B") if view.format != "B" or view.ndim != 1 else view


def unpack_header(raw: memoryview | bytes, limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    """msgpack-decode a header with every container limit set."""
    if len(raw) > limits.max_header_bytes:
        raise LimitExceeded(
            f"the message header is {len(raw)} bytes; the limit is {limits.max_header_bytes}"
        )
    try:
        header = msgpack.unpackb(
            raw,
            raw=False,
            strict_map_key=True,
            max_str_len=limits.max_str_len,
            max_bin_len=limits.max_header_bytes,
            max_array_len=limits.max_array_len,
            max_map_len=limits.max_map_len,
            max_ext_len=0,
        )
    except ValueError as exc:
        # msgpack raises ValueError for limits, ExtraData, bad maps; all are malformed input
        raise ProtocolError(f"the message header is not valid msgpack: {exc}") from None
    except (msgpack.UnpackException, TypeError, RecursionError) as exc:
        raise ProtocolError(f"the message header is not valid msgpack: {exc}") from None
    if not isinstance(header, dict):
        raise ProtocolError(f"the message header must be a map, not {type(header).__name__}")
    return header


def area_too_large(width: int, height: int, fmt: str, limits: Limits) -> str | None:
    """Why a ``width`` x ``height`` buffer of ``fmt`` would be refused by ``limits``, as a
    sentence for an editor to show before it reads the pixels (a 16-bit 8000 x 6000 layer
    takes seconds to read and convert); None when it fits."""
    nbytes = width * height * FORMATS[fmt]
    if width <= limits.max_side and height <= limits.max_side and \
            nbytes <= limits.max_frame_bytes:
        return None
    return (f"the area to edit is {width}×{height} ({nbytes / 2**20:.0f} MiB as {fmt}); the "
            f"engine takes at most {limits.max_side} pixels a side and "
            f"{limits.max_frame_bytes / 2**20:.0f} MiB: select a smaller region")


def check_buffer_spec(spec: Any, limits: Limits) -> dict[str, Any]:
    """Validate one entry of header["buffers"]; return it normalised."""
    if not isinstance(spec, dict):
        raise ProtocolError("each buffer description must be a map")
    name = spec.get("name")
    fmt = spec.get("format")
    width, height, nbytes = spec.get("width"), spec.get("height"), spec.get("nbytes")
    if not isinstance(name, str) or not name or len(name) > 64:
        raise ProtocolError("each buffer needs a name (a string of 1 to 64 characters)")
    if fmt not in FORMATS:
        raise ProtocolError(
            f"buffer {name!r} has unknown format {fmt!r}; known formats: {', '.join(FORMATS)}"
        )
    for label, value in (("width", width), ("height", height), ("nbytes", nbytes)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ProtocolError(f"buffer {name!r} needs a non-negative integer {label}")
    if width == 0 or height == 0:
        raise ProtocolError(f"buffer {name!r} is empty ({width}x{height})")
    if width > limits.max_side or height > limits.max_side:
        raise LimitExceeded(
            f"buffer {name!r} is {width}x{height}; the largest side allowed is {limits.max_side}"
        )
    expected = width * height * FORMATS[fmt]
    if nbytes != expected:
        raise ProtocolError(
            f"buffer {name!r} claims {nbytes} bytes but {width}x{height} {fmt} is {expected}"
        )
    if nbytes > limits.max_frame_bytes:
        raise LimitExceeded(
            f"buffer {name!r} is {nbytes} bytes; the largest frame allowed is "
            f"{limits.max_frame_bytes}"
        )
    transfer = spec.get("transfer", "srgb")
    if fmt == "a8":
        transfer = "srgb"
    elif transfer not in TRANSFERS:
        raise ProtocolError(f"buffer {name!r} has unknown transfer {transfer!r}")
    return {"name": name, "format": fmt, "width": width, "height": height,
            "nbytes": nbytes, "transfer": transfer}


def decode(frames: Sequence[Any], limits: Limits = DEFAULT_LIMITS,
           shared: RingReader | None = None) -> Message:
    """Decode frames (without routing ids) into a :class:`Message`, validating everything.

    Buffer data are zero-copy memoryviews of the received frames, or of ``shared`` (the
    connection's shared-memory ring) for entries that name a position in it.
    """
    if len(frames) < 2:
        raise ProtocolError(f"a message needs at least 2 frames, got {len(frames)}")
    if len(frames) > limits.max_frames:
        raise LimitExceeded(
            f"a message may have at most {limits.max_frames} frames, got {len(frames)}"
        )
    magic = bytes(_frame_view(frames[0])[:8])
    if len(magic) != 3 or magic[:2] != MAGIC:
        raise ProtocolError("not a wordbrush message (bad magic frame)")
    if magic[2] != PROTOCOL_VERSION:
        raise UnsupportedVersion(
            f"protocol version {magic[2]} is not supported; this side speaks {PROTOCOL_VERSION}"
        )
    header = unpack_header(_frame_view(frames[1]), limits)
    mtype, mid, ref = header.get("type"), header.get("id"), header.get("ref")
    if not isinstance(mtype, str) or not mtype or len(mtype) > 32:
        raise ProtocolError("the header needs a 'type' string")
    if not isinstance(mid, str) or not 1 <= len(mid) <= 64:
        raise ProtocolError("the header needs an 'id' string of 1 to 64 characters")
    if ref is not None and (not isinstance(ref, str) or len(ref) > 64):
        raise ProtocolError("the header's 'ref' must be a string of at most 64 characters")
    version = header.get("v", PROTOCOL_VERSION)
    if version != PROTOCOL_VERSION:
        raise UnsupportedVersion(
            f"protocol version {version!r} is not supported; this side speaks {PROTOCOL_VERSION}"
        )
    try:
        body, buffers = _body_and_buffers(header, frames, limits, shared)
    except ProtocolError as exc:
        exc.ref, exc.message_type = mid, mtype
        raise
    return Message(type=mtype, body=body, buffers=buffers, id=mid, ref=ref, version=version)


def _body_and_buffers(header: dict[str, Any], frames: Sequence[Any], limits: Limits,
                      shared: RingReader | None) -> tuple[dict[str, Any], list[Buffer]]:
    """The validated body and buffers of a message whose header fields were readable."""
    body = header.get("body", {})
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise ProtocolError("the header's 'body' must be a map")
    specs = header.get("buffers", [])
    if specs is None:
        specs = []
    if not isinstance(specs, list):
        raise ProtocolError("the header's 'buffers' must be a list")
    if len(specs) > limits.max_buffers:
        raise LimitExceeded(f"at most {limits.max_buffers} buffers are allowed, got {len(specs)}")
    in_frames = sum(1 for spec in specs if not (isinstance(spec, dict) and "shm" in spec))
    if in_frames != len(frames) - 2:
        raise ProtocolError(
            f"the header describes {in_frames} buffers in frames but {len(frames) - 2} "
            "frames followed"
        )
    if in_frames != len(specs) and shared is None:
        raise SharedMemoryUnknown(
            "a buffer names shared memory that this side does not hold (say hello again)"
        )
    buffers: list[Buffer] = []
    seen: set[str] = set()
    following = iter(frames[2:])
    for spec in specs:
        clean = check_buffer_spec(spec, limits)
        if clean["name"] in seen:
            raise ProtocolError(f"buffer name {clean['name']!r} appears twice")
        seen.add(clean["name"])
        if "shm" in spec and shared is not None:
            view = shared.view(spec["shm"], clean["nbytes"], clean["name"])
        else:
            view = _frame_view(next(following))
        if view.nbytes != clean["nbytes"]:
            raise ProtocolError(
                f"buffer {clean['name']!r} claims {clean['nbytes']} bytes but its frame "
                f"has {view.nbytes}"
            )
        buffers.append(
            Buffer(clean["name"], clean["width"], clean["height"], clean["format"], view,
                   clean["transfer"])
        )
    return body, buffers
