"""Message types, their bodies, and the validation both ends apply to them.

Requests (client -> engine): ``hello``, ``submit``, ``cancel``, ``fetch``, ``ping``,
``status``, ``bye`` (no reply: the client is closing; the engine lets go of its rings).
Replies and events (engine -> client): ``welcome``, ``accepted``, ``progress``,
``result``, ``cancelled``, ``error``, ``pong``, ``status``.

Every reply carries ``ref`` = the id of the request it answers; job events (``accepted``,
``progress``, ``result``, ``cancelled`` and job errors) also carry ``body["job"]``, the
submit's id. A submit's id is its idempotency key: resubmitting the same id attaches to
the existing job instead of starting a second one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import ErrorCode, InvalidRequest, LimitExceeded
from .framing import FORMATS, Buffer, Limits, Message, check_buffer_spec

REQUEST_TYPES = frozenset({"hello", "submit", "cancel", "fetch", "ping", "status", "bye"})
REPLY_TYPES = frozenset(
    {"welcome", "accepted", "progress", "result", "cancelled", "error", "pong", "status"}
)
LAYER_FORMATS = ("rgba8", "rgba16", "rgbaf16", "rgbaf32")
MASK_FORMAT = "a8"
PASTE_MODES = ("auto", "render", "delta", "colour")
#: the largest live preview image a request may ask for (pixels a side)
MAX_PREVIEW_SIDE = 1024
#: the side the editors ask a live preview at (small: it must show within the 300 ms goal)
PREVIEW_SIDE = 256


# --------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class ParamSpec:
    """One tunable parameter of an edit method, as advertised in ``welcome``.

    ``kind`` is ``float``, ``int``, ``bool`` or ``choice``. Editors build their widgets
    from these; the engine validates submitted values with :meth:`validate`.
    """

    name: str
    kind: str
    default: Any
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    help: str = ""

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "kind": self.kind, "default": self.default,
                                "help": self.help}
        if self.minimum is not None:
            data["min"] = self.minimum
        if self.maximum is not None:
            data["max"] = self.maximum
        if self.choices:
            data["choices"] = list(self.choices)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ParamSpec:
        return cls(
            name=str(data["name"]),
            kind=str(data["kind"]),
            default=data.get("default"),
            minimum=data.get("min"),
            maximum=data.get("max"),
            choices=tuple(data.get("choices", ())),
            help=str(data.get("help", "")),
        )

    def validate(self, value: Any) -> Any:
        """Return ``value`` coerced to this parameter's kind, or raise InvalidRequest."""
        where = f"parameter {self.name!r}"
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise InvalidRequest(f"{where} must be true or false, not {value!r}")
            return value
        if self.kind == "choice":
            if value not in self.choices:
                raise InvalidRequest(f"{where} must be one of {', '.join(self.choices)}")
            return value
        if self.kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                if isinstance(value, float) and value.is_integer():
                    value = int(value)
                else:
                    raise InvalidRequest(f"{where} must be an integer, not {value!r}")
        elif self.kind == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InvalidRequest(f"{where} must be a number, not {value!r}")
            value = float(value)
            if not math.isfinite(value):
                raise InvalidRequest(f"{where} must be finite")
        else:
            raise InvalidRequest(f"{where} has unknown kind {self.kind!r}")
        if self.minimum is not None and value < self.minimum:
            raise InvalidRequest(f"{where} is {value}; the smallest allowed is {self.minimum}")
        if self.maximum is not None and value > self.maximum:
            raise InvalidRequest(f"{where} is {value}; the largest allowed is {self.maximum}")
        return value


def validate_params(specs: list[ParamSpec], values: dict[str, Any]) -> dict[str, Any]:
    """Defaults overlaid with ``values``; unknown names and bad values raise InvalidRequest."""
    by_name = {spec.name: spec for spec in specs}
    unknown = sorted(set(values) - set(by_name))
    if unknown:
        known = ", ".join(sorted(by_name)) or "none"
        raise InvalidRequest(f"unknown parameter(s) {', '.join(unknown)}; this method takes: "
                             f"{known}")
    clean = {spec.name: spec.default for spec in specs}
    for name, value in values.items():
        clean[name] = by_name[name].validate(value)
    return clean


def parse_assignments(text: str, specs: Sequence[ParamSpec]) -> dict[str, Any]:
    """``"steps=60 keep_unnamed=false"`` as validated values for ``specs``.

    For editors whose only free-form input is one text field (GIMP's procedure
    arguments). Pairs are separated by spaces, commas or semicolons; every value is read
    by its parameter's kind, so ``1`` is a float for a float and ``yes`` a bool for a
    bool. Raises :class:`InvalidRequest` naming the pair that is wrong.
    """
    by_name = {spec.name: spec for spec in specs}
    values: dict[str, Any] = {}
    for pair in text.replace(",", " ").replace(";", " ").split():
        name, sep, raw = pair.partition("=")
        if not sep or not name or not raw:
            raise InvalidRequest(f"{pair!r} is not NAME=VALUE")
        spec = by_name.get(name)
        if spec is None:
            known = ", ".join(sorted(by_name)) or "none"
            raise InvalidRequest(f"unknown parameter {name!r}; this method takes: {known}")
        values[name] = spec.validate(_read_value(spec, raw))
    return values


def _read_value(spec: ParamSpec, raw: str) -> Any:
    """A text value read as ``spec``'s kind (validation comes after)."""
    word = raw.strip().lower()
    try:
        if spec.kind == "bool":
            if word in ("true", "yes", "on", "1"):
                return True
            if word in ("false", "no", "off", "0"):
                return False
            raise ValueError(raw)
        if spec.kind == "int":
            return int(word)
        if spec.kind == "float":
            return float(word)
    except ValueError:
        expected = {"bool": "true or false", "int": "an integer", "float": "a number"}
        raise InvalidRequest(
            f"parameter {spec.name!r} must be {expected[spec.kind]}, not {raw!r}") from None
    return raw


# --------------------------------------------------------------------------- edit requests


def request_for_selection(
    layer: Buffer,
    mask: bytes | bytearray | memoryview | None,
    framing: Any = None,
    *,
    offset: tuple[int, int] = (0, 0),
    **fields: Any,
) -> EditRequest:
    """An :class:`EditRequest` for a whole layer and a selection over it, cropped to what the
    engine needs: the model square around the selection (clipped to the layer), never the
    whole canvas. ``mask`` is the a8 selection over the full layer (None: the whole layer is
    the region); ``framing`` is the target pack's (its manifest dict or a Framing); ``fields``
    are the other EditRequest fields (prompt, method, pack, params, seed, variations, ...).

    Raises RegionError when the mask selects nothing.
    """
    from .regions import Framing, context_box, crop_pixels, mask_bbox

    bounds = (int(offset[0]), int(offset[1]), layer.width, layer.height)
    if mask is None:
        return EditRequest(layer=layer, mask=None, offset=offset, layer_bounds=bounds, **fields)
    box = mask_bbox(mask, layer.width, layer.height)
    if box is None:
        from .regions import RegionError

        raise RegionError("the mask selects nothing (it is all zero): "
                          "select the region to edit first")
    ctx = context_box(box, layer.width, layer.height, Framing.from_dict(framing))
    bpp = layer.bytes_per_pixel
    crop = Buffer(layer.name, ctx.w, ctx.h, layer.format,
                  crop_pixels(layer.data, layer.width, layer.height, bpp, ctx), layer.transfer)
    crop_mask = Buffer("mask", ctx.w, ctx.h, MASK_FORMAT,
                       crop_pixels(mask, layer.width, layer.height, 1, ctx))
    return EditRequest(layer=crop, mask=crop_mask, offset=(offset[0] + ctx.x, offset[1] + ctx.y),
                       layer_bounds=bounds, **fields)


@dataclass
class EditRequest:
    """What an editor or the CLI asks the engine to do: the body and buffers of ``submit``.

    ``layer`` is the part of the layer to edit (usually the context box around the
    selection, see :func:`protocol.regions.context_box`), ``offset`` where that crop sits
    in the document, so the result's offset comes back in document coordinates.
    ``mask`` is the user's selection over the same crop (a8, soft edges kept); ``None``
    means the whole layer is the region. ``layer_bounds`` is the whole layer's box
    ``(x, y, w, h)`` in the document: where its pixels end. The engine fills a frame past
    the crop only at those edges (a face near the canvas border); a crop edge inside them
    is only where the context the editor sent ends. ``None`` (older clients): every crop
    edge counts as the layer's.

    ``preview`` > 0 asks for a live preview instead of an edit: the engine runs a one-pass
    method (the one asked for when it is one, else the pack's: ``PackInfo.preview_method``),
    one variation, and answers one opaque-where-the-layer-is ``rgba8`` image of the crop with
    the edit composited over it, sRGB, at most ``preview`` pixels a side (for display: it
    is never meant to become a layer).
    """

    layer: Buffer
    prompt: str = ""
    mask: Buffer | None = None
    reference: Buffer | None = None
    method: str | None = None
    pack: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    variations: int = 1
    offset: tuple[int, int] = (0, 0)
    layer_bounds: tuple[int, int, int, int] | None = None
    preview: int = 0

    def to_message(self, message_id: str | None = None) -> Message:
        buffers = [Buffer("layer", self.layer.width, self.layer.height, self.layer.format,
                          self.layer.data, self.layer.transfer)]
        if self.mask is not None:
            buffers.append(Buffer("mask", self.mask.width, self.mask.height, MASK_FORMAT,
                                  self.mask.data))
        if self.reference is not None:
            ref = self.reference
            buffers.append(Buffer("reference", ref.width, ref.height, ref.format, ref.data,
                                  ref.transfer))
        body: dict[str, Any] = {
            "prompt": self.prompt,
            "method": self.method,
            "pack": self.pack,
            "params": dict(self.params),
            "seed": self.seed,
            "variations": self.variations,
            "offset": [int(self.offset[0]), int(self.offset[1])],
        }
        if self.layer_bounds is not None:
            body["layer_bounds"] = [int(v) for v in self.layer_bounds]
        if self.preview:
            body["preview"] = int(self.preview)
        message = Message("submit", body, buffers)
        if message_id is not None:
            message.id = message_id
        return message


def _get_int(body: dict[str, Any], key: str, default: int | None, lo: int, hi: int) -> int | None:
    value = body.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"'{key}' must be an integer, not {value!r}")
    if not lo <= value <= hi:
        raise InvalidRequest(f"'{key}' is {value}; it must be between {lo} and {hi}")
    return value


def _get_str(body: dict[str, Any], key: str, *, max_len: int = 128) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidRequest(f"'{key}' must be a string, not {type(value).__name__}")
    if len(value) > max_len:
        raise LimitExceeded(f"'{key}' is {len(value)} characters; the limit is {max_len}")
    return value


def parse_submit(message: Message, limits: Limits) -> EditRequest:
    """Validate a ``submit`` message and return its :class:`EditRequest`.

    The client runs the same check before sending (against the engine's advertised
    limits), so an oversized request fails locally with a clear message instead of being
    dropped silently by ZeroMQ's ``MAXMSGSIZE``.
    """
    body = message.body
    prompt = body.get("prompt", "")
    if prompt is None:
        prompt = ""
    if not isinstance(prompt, str):
        raise InvalidRequest("'prompt' must be a string")
    if len(prompt) > limits.max_prompt_chars:
        raise LimitExceeded(
            f"the prompt is {len(prompt)} characters; the limit is {limits.max_prompt_chars}"
        )
    method = _get_str(body, "method")
    pack = _get_str(body, "pack")
    params = body.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict) or not all(isinstance(k, str) for k in params):
        raise InvalidRequest("'params' must be a map of names to values")
    seed = _get_int(body, "seed", None, 0, 2**63 - 1)
    variations = _get_int(body, "variations", 1, 1, limits.max_variations)
    preview = _get_int(body, "preview", 0, 0, MAX_PREVIEW_SIDE)
    offset = body.get("offset", [0, 0])
    if (
        not isinstance(offset, (list, tuple))
        or len(offset) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in offset)
        or not all(-(2**31) <= v < 2**31 for v in offset)
    ):
        raise InvalidRequest("'offset' must be a pair of integers [x, y]")
    bounds = body.get("layer_bounds")
    if bounds is not None and (
        not isinstance(bounds, (list, tuple))
        or len(bounds) != 4
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in bounds)
        or not all(-(2**31) <= v < 2**31 for v in bounds)
        or bounds[2] <= 0 or bounds[3] <= 0
    ):
        raise InvalidRequest("'layer_bounds' must be [x, y, width, height], integers, with a "
                             "positive width and height")

    names = {buf.name for buf in message.buffers}
    extra = names - {"layer", "mask", "reference"}
    if extra:
        raise InvalidRequest(f"unexpected buffer(s) {', '.join(sorted(extra))} in submit")
    layer = message.buffer("layer")
    if layer is None:
        raise InvalidRequest("submit needs a 'layer' buffer")
    if layer.format not in LAYER_FORMATS:
        raise InvalidRequest(
            f"the layer must be one of {', '.join(LAYER_FORMATS)}, not {layer.format}"
        )
    mask = message.buffer("mask")
    if mask is not None:
        if mask.format != MASK_FORMAT:
            raise InvalidRequest(f"the mask must be {MASK_FORMAT}, not {mask.format}")
        if (mask.width, mask.height) != (layer.width, layer.height):
            raise InvalidRequest(
                f"the mask is {mask.width}x{mask.height} but the layer is "
                f"{layer.width}x{layer.height}; they must match"
            )
    reference = message.buffer("reference")
    if reference is not None and reference.format not in LAYER_FORMATS:
        raise InvalidRequest(
            f"the reference image must be one of {', '.join(LAYER_FORMATS)}, "
            f"not {reference.format}"
        )
    if not prompt.strip() and reference is None:
        raise InvalidRequest("a submit needs a prompt or a reference image")
    return EditRequest(
        layer=layer,
        prompt=prompt,
        mask=mask,
        reference=reference,
        method=method,
        pack=pack,
        params=dict(params),
        seed=seed,
        variations=variations or 1,
        offset=(int(offset[0]), int(offset[1])),
        layer_bounds=None if bounds is None else (bounds[0], bounds[1], bounds[2], bounds[3]),
        preview=preview or 0,
    )


def check_request(request: EditRequest, limits: Limits) -> None:
    """Client-side pre-flight: the same checks the engine applies, before any byte is sent
    (the pixels' too: :func:`check_finite`)."""
    message = request.to_message()
    for buf in message.buffers:
        check_buffer_spec(buf.spec(), limits)
    parse_submit(message, limits)
    check_finite(request)


def check_finite(request: EditRequest) -> None:
    """Refuse NaN or infinite float values inside the selection (the whole layer without
    one) and anywhere in a reference image (:mod:`protocol.pixels`); the engine applies the
    same rule before it frames the region."""
    from .pixels import non_finite_pixels, non_finite_sentence

    layer = request.layer
    count, first = non_finite_pixels(layer.data, layer.format, layer.width, layer.height,
                                     request.mask.data if request.mask is not None else None)
    if count and first is not None:
        where = "inside the selection" if request.mask is not None else "of the layer"
        raise InvalidRequest(non_finite_sentence(
            count, (first[0] + request.offset[0], first[1] + request.offset[1]), where))
    ref = request.reference
    if ref is not None:
        count, first = non_finite_pixels(ref.data, ref.format, ref.width, ref.height)
        if count and first is not None:
            raise InvalidRequest(non_finite_sentence(count, first, "of the reference image"))


# --------------------------------------------------------------------------- replies


def error_message(code: ErrorCode, text: str, *, ref: str | None, job: str | None = None
                  ) -> Message:
    body: dict[str, Any] = {"code": code.value, "message": text}
    if job is not None:
        body["job"] = job
    return Message("error", body, ref=ref)


def job_id_of(message: Message) -> str:
    """The ``job`` field of cancel/fetch requests."""
    job = message.body.get("job")
    if not isinstance(job, str) or not 1 <= len(job) <= 64:
        raise InvalidRequest(f"'{message.type}' needs a 'job' id string")
    return job


def bytes_per_pixel(fmt: str) -> int:
    return FORMATS[fmt]
