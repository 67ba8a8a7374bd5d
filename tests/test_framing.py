"""Framing and message validation: round trips, every rule, and fuzzed decoding."""

from __future__ import annotations

import contextlib

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol.errors import InvalidRequest, LimitExceeded, ProtocolError, UnsupportedVersion
from protocol.framing import (
    FORMATS,
    MAGIC_FRAME,
    Buffer,
    Limits,
    Message,
    check_buffer_spec,
    decode,
    encode,
)
from protocol.messages import EditRequest, ParamSpec, check_request, parse_submit, validate_params

LIMITS = Limits()


def _header(**overrides: object) -> bytes:
    header = {"v": 1, "type": "ping", "id": "abc", "ref": None, "body": {}, "buffers": []}
    header.update(overrides)
    return msgpack.packb(header, use_bin_type=True)


def _layer(w: int = 3, h: int = 2, fmt: str = "rgba8") -> Buffer:
    bpp = FORMATS[fmt]
    return Buffer("layer", w, h, fmt, bytes(range(256)) * 0 + bytes(w * h * bpp))


def test_round_trip_keeps_everything() -> None:
    pixels = bytes(range(24))
    msg = Message("submit", {"prompt": "a red star", "params": {"steps": 3}},
                  [Buffer("layer", 3, 2, "rgba8", pixels, "linear"),
                   Buffer("mask", 3, 2, "a8", b"\x00\xff\x80\x01\x02\x03")], ref="r1")
    frames = encode(msg)
    assert frames[0] == MAGIC_FRAME
    back = decode(frames)
    assert (back.type, back.id, back.ref, back.body) == (msg.type, msg.id, "r1", msg.body)
    assert bytes(back.buffers[0].data) == pixels
    assert back.buffers[0].transfer == "linear"
    assert back.buffer("mask").format == "a8"


def test_buffers_are_zero_copy_views() -> None:
    pixels = bytearray(24)
    frames = encode(Message("submit", {}, [Buffer("layer", 3, 2, "rgba8", pixels)]))
    assert frames[2] is pixels  # not copied on the way out
    back = decode(frames)
    pixels[0] = 7
    assert back.buffers[0].data[0] == 7  # a view, not a copy, on the way in


def test_unknown_header_fields_are_ignored() -> None:
    back = decode([MAGIC_FRAME, _header(future_field={"x": 1})])
    assert back.type == "ping"


@pytest.mark.parametrize(
    ("frames", "error", "text"),
    [
        ([MAGIC_FRAME], ProtocolError, "at least 2 frames"),
        ([b"XX\x01", _header()], ProtocolError, "bad magic"),
        ([b"WB", _header()], ProtocolError, "bad magic"),
        ([b"WB\x09", _header()], UnsupportedVersion, "version 9"),
        ([MAGIC_FRAME, msgpack.packb([1, 2])], ProtocolError, "must be a map"),
        ([MAGIC_FRAME, b"\xc1"], ProtocolError, "not valid msgpack"),
        ([MAGIC_FRAME, _header(type=7)], ProtocolError, "'type'"),
        ([MAGIC_FRAME, _header(id="")], ProtocolError, "'id'"),
        ([MAGIC_FRAME, _header(v=2)], UnsupportedVersion, "version 2"),
        ([MAGIC_FRAME, _header(body=[1])], ProtocolError, "'body'"),
        ([MAGIC_FRAME, _header(buffers={})], ProtocolError, "'buffers'"),
        ([MAGIC_FRAME, _header(), b"extra"], ProtocolError, "describes 0 buffers"),
        ([MAGIC_FRAME] + [b""] * 30, LimitExceeded, "at most 18 frames"),
    ],
)
def test_decode_rejects(frames: list[bytes], error: type, text: str) -> None:
    with pytest.raises(error, match=text):
        decode(frames)


def _spec(**overrides: object) -> dict:
    spec = {"name": "layer", "width": 2, "height": 2, "format": "rgba8", "nbytes": 16}
    spec.update(overrides)
    return spec


@pytest.mark.parametrize(
    ("spec", "error", "text"),
    [
        (_spec(format="cmyk8"), ProtocolError, "unknown format"),
        (_spec(nbytes=15), ProtocolError, "claims 15 bytes"),
        (_spec(width=0, nbytes=0), ProtocolError, "empty"),
        (_spec(width=-1), ProtocolError, "non-negative"),
        (_spec(width=True), ProtocolError, "integer width"),
        (_spec(name=""), ProtocolError, "name"),
        (_spec(width=9000, nbytes=9000 * 2 * 4), LimitExceeded, "largest side"),
        (_spec(transfer="gamma22"), ProtocolError, "transfer"),
        ("notamap", ProtocolError, "must be a map"),
    ],
)
def test_buffer_spec_rules(spec: object, error: type, text: str) -> None:
    with pytest.raises(error, match=text):
        check_buffer_spec(spec, LIMITS)


def test_frame_length_must_match_claim() -> None:
    header = _header(buffers=[_spec()])
    with pytest.raises(ProtocolError, match="its frame has 15"):
        decode([MAGIC_FRAME, header, b"x" * 15])


def test_huge_claimed_size_refused_before_use() -> None:
    small = Limits(max_frame_bytes=1000)
    header = _header(buffers=[_spec(width=100, height=100, nbytes=40000)])
    with pytest.raises(LimitExceeded, match="largest frame"):
        decode([MAGIC_FRAME, header, b""], small)


def test_duplicate_buffer_names() -> None:
    header = _header(buffers=[_spec(), _spec()])
    with pytest.raises(ProtocolError, match="appears twice"):
        decode([MAGIC_FRAME, header, b"x" * 16, b"x" * 16])


def test_header_size_limit() -> None:
    with pytest.raises(LimitExceeded, match="header"):
        decode([MAGIC_FRAME, _header(body={"p": "x" * 70000})])


def test_msgpack_container_limits() -> None:
    nested = _header(body={"a": list(range(5000))})
    with pytest.raises(ProtocolError):
        decode([MAGIC_FRAME, nested])
    pk = msgpack.packb
    deep = b"\x91" * 5000 + b"\x01"  # [[[...[1]...]]], 5000 levels, written by hand
    header = (b"\x84" + pk("v") + pk(1) + pk("type") + pk("x") + pk("id") + pk("a")
              + pk("body") + b"\x81" + pk("d") + deep)
    with pytest.raises(ProtocolError):
        decode([MAGIC_FRAME, header])


def test_encode_refuses_inconsistent_buffer() -> None:
    with pytest.raises(ProtocolError, match="claims"):
        encode(Message("submit", {}, [Buffer("layer", 3, 3, "rgba8", b"short")]))


# ------------------------------------------------------------------ submit validation


def _submit(**body: object) -> Message:
    req = EditRequest(layer=_layer(), prompt="a green star")
    msg = req.to_message()
    msg.body.update(body)
    return decode(encode(msg))


def test_submit_round_trip() -> None:
    mask = Buffer("mask", 3, 2, "a8", b"\x00" * 6)
    req = EditRequest(layer=_layer(), mask=mask, prompt="p", method="m", pack="k",
                      params={"a": 1}, seed=5, variations=2, offset=(10, -4))
    back = parse_submit(decode(encode(req.to_message())), LIMITS)
    assert (back.prompt, back.method, back.pack, back.params, back.seed, back.variations,
            back.offset) == ("p", "m", "k", {"a": 1}, 5, 2, (10, -4))
    assert back.mask is not None


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ({"prompt": "x" * 1001}, "prompt is 1001"),
        ({"prompt": 5}, "'prompt' must be a string"),
        ({"prompt": "  "}, "needs a prompt"),
        ({"variations": 0}, "'variations'"),
        ({"variations": 99}, "'variations'"),
        ({"seed": -1}, "'seed'"),
        ({"seed": "1"}, "'seed'"),
        ({"offset": [1]}, "'offset'"),
        ({"params": [1]}, "'params'"),
        ({"method": 3}, "'method'"),
    ],
)
def test_submit_rules(body: dict, text: str) -> None:
    with pytest.raises(ProtocolError, match=text):
        parse_submit(_submit(**body), LIMITS)


def test_submit_buffer_rules() -> None:
    layer = _layer()
    bad_mask = Buffer("mask", 2, 2, "a8", b"\x00" * 4)
    with pytest.raises(InvalidRequest, match="must match"):
        parse_submit(decode(encode(EditRequest(layer=layer, mask=bad_mask, prompt="p")
                                   .to_message())), LIMITS)
    with pytest.raises(InvalidRequest, match="layer must be"):
        parse_submit(decode(encode(EditRequest(layer=Buffer("layer", 2, 2, "a8", b"\0" * 4),
                                               prompt="p").to_message())), LIMITS)
    msg = Message("submit", {"prompt": "p"}, [])
    with pytest.raises(InvalidRequest, match="needs a 'layer'"):
        parse_submit(msg, LIMITS)


def test_client_preflight_uses_engine_limits() -> None:
    small = Limits(max_side=2)
    with pytest.raises(LimitExceeded, match="largest side"):
        check_request(EditRequest(layer=_layer(3, 2), prompt="p"), small)


def test_param_specs() -> None:
    specs = [ParamSpec("steps", "int", 10, minimum=1, maximum=100),
             ParamSpec("lr", "float", 0.1, minimum=0.0),
             ParamSpec("mode", "choice", "a", choices=("a", "b")),
             ParamSpec("flag", "bool", False)]
    assert validate_params(specs, {}) == {"steps": 10, "lr": 0.1, "mode": "a", "flag": False}
    assert validate_params(specs, {"steps": 5.0})["steps"] == 5
    for bad, text in [({"steps": 0}, "smallest"), ({"steps": 1.5}, "integer"),
                      ({"lr": float("nan")}, "finite"), ({"mode": "c"}, "one of"),
                      ({"flag": 1}, "true or false"), ({"nope": 1}, "unknown parameter")]:
        with pytest.raises(InvalidRequest, match=text):
            validate_params(specs, bad)
    assert ParamSpec.from_dict(specs[0].to_dict()) == specs[0]


# ------------------------------------------------------------------ fuzzing

frame_st = st.one_of(st.binary(max_size=64), st.just(MAGIC_FRAME))
header_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
    | st.binary(max_size=8),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(frame_st, min_size=0, max_size=6))
def test_fuzz_raw_frames_only_raise_protocol_errors(frames: list[bytes]) -> None:
    with contextlib.suppress(ProtocolError):
        decode(frames)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(["v", "type", "id", "ref", "body", "buffers", "x"]),
                       header_values, max_size=7),
       st.lists(st.binary(max_size=32), max_size=3))
def test_fuzz_headers_only_raise_protocol_errors(header: dict, buffers: list[bytes]) -> None:
    try:
        packed = msgpack.packb(header, use_bin_type=True)
    except (ValueError, OverflowError, TypeError):
        return
    try:
        message = decode([MAGIC_FRAME, packed, *buffers])
        if message.type == "submit":
            parse_submit(message, LIMITS)
    except ProtocolError:
        pass


def test_parse_assignments_reads_each_value_by_its_kind() -> None:
    from protocol.messages import parse_assignments

    specs = [ParamSpec("steps", "int", 4, 1, 100), ParamSpec("lr", "float", 0.1, 0.0, 1.0),
             ParamSpec("keep", "bool", True), ParamSpec("project", "choice", "auto",
                                                        choices=("auto", "on", "off"))]
    assert parse_assignments("steps=7, lr=1; keep=off project=on", specs) == {
        "steps": 7, "lr": 1.0, "keep": False, "project": "on"}
    assert parse_assignments("  ", specs) == {}
    for text, message in (("keep=maybe", "true or false"), ("lr=x", "a number"),
                          ("project=sideways", "one of auto, on, off"),
                          ("=3", "not NAME=VALUE"), ("nope=1", "unknown parameter")):
        with pytest.raises(InvalidRequest, match=message):
            parse_assignments(text, specs)
