"""Tests for engine/imaging.py: codecs, framing, paste-back and the selection guarantee.

The guarantee every part of the project relies on: wherever the selection is 0 the patch's
alpha is exactly 0, and compositing the patch over the original leaves those pixels
bit-identical, in every wire format and transfer.
"""

from __future__ import annotations

import time
import zlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from engine.imaging import (
    FORMATS,
    Patch,
    RegionError,
    background_colour,
    bytes_per_pixel,
    composite_over,
    decode_pixels,
    decode_raw,
    encode_pixels,
    frame_region,
    inversion_psnr,
    linear_to_srgb,
    object_weight,
    paste_back,
    srgb_to_linear,
)
from protocol.regions import Box, Framing, context_box, mask_bbox, model_square

RGBA_FORMATS = ["rgba8", "rgba16", "rgbaf16", "rgbaf32"]


# --------------------------------------------------------------------------- helpers


def random_layer_bytes(rng: np.random.Generator, w: int, h: int, fmt: str,
                       opaque: bool = False) -> bytes:
    """Random pixels in ``fmt``; about 1/8 of the alphas are 0 unless ``opaque``."""
    if fmt == "rgba8":
        raw = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
        full = 255
    elif fmt == "rgba16":
        raw = rng.integers(0, 65536, (h, w, 4), dtype=np.uint16).astype("<u2")
        full = 65535
    else:
        raw = rng.random((h, w, 4), dtype=np.float32).astype("<f2" if fmt == "rgbaf16" else "<f4")
        full = 1.0
    if opaque:
        raw[..., 3] = full
    else:
        raw[..., 3][rng.random((h, w)) < 0.125] = 0
    return raw.tobytes()


def random_soft_mask(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """An a8 selection: a soft-edged ellipse with holes and stray soft pixels inside."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    cx, cy = rng.uniform(0.3, 0.7) * w, rng.uniform(0.3, 0.7) * h
    rx, ry = rng.uniform(0.15, 0.35) * w + 1, rng.uniform(0.15, 0.35) * h + 1
    d = np.sqrt(((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2)
    soft = np.clip((1.2 - d) / 0.4, 0.0, 1.0)  # 1 inside, ramp over the edge, 0 outside
    mask = np.rint(soft * 255).astype(np.uint8)
    holes = rng.random((h, w)) < 0.05
    mask[holes] = 0
    noisy = (mask > 0) & (rng.random((h, w)) < 0.1)
    mask[noisy] = rng.integers(1, 256, int(noisy.sum()), dtype=np.uint8)
    assert (mask > 0).any() and (mask == 0).any()
    return mask


def random_edit(rng: np.random.Generator, res: int) -> torch.Tensor:
    return torch.from_numpy(rng.uniform(-1, 1, (1, 3, res, res)).astype(np.float32))


def bits(a: np.ndarray) -> np.ndarray:
    """A view that compares float arrays bit for bit (so -0.0 ≠ 0.0 and NaN == NaN)."""
    if a.dtype == np.float32:
        return a.view(np.uint32)
    return a.view(np.uint16) if a.dtype == np.float16 else a


# --------------------------------------------------------------------------- codecs


@pytest.mark.parametrize("fmt", ["rgba8", "rgba16", "rgbaf16", "rgbaf32", "a8"])
def test_decode_encode_round_trip(fmt: str) -> None:
    rng = np.random.default_rng(0)
    w, h = 13, 7
    if fmt == "a8":
        data = rng.integers(0, 256, (h, w), dtype=np.uint8).tobytes()
    else:
        data = random_layer_bytes(rng, w, h, fmt)
    assert len(data) == w * h * bytes_per_pixel(fmt)
    arr = decode_pixels(data, w, h, fmt)
    assert arr.dtype == np.float32
    assert arr.shape == ((h, w) if fmt == "a8" else (h, w, 4))
    assert arr.min() >= 0.0 and arr.max() <= 1.0
    assert encode_pixels(arr, fmt) == data
    for buf in (bytearray(data), memoryview(data)):
        assert encode_pixels(decode_pixels(buf, w, h, fmt), fmt) == data
    with pytest.raises(RegionError):
        decode_pixels(data[:-1], w, h, fmt)


def test_codec_details() -> None:
    # rgba16 is little-endian whatever the host.
    px = decode_raw(b"\x01\x02" * 4, 1, 1, "rgba16")
    assert px.tolist() == [[[0x0201] * 4]]
    # round(x · scale) with clipping and NaN → 0.
    values = np.array([[[0.0, 1.0, 0.5, 0.2]], [[-0.3, 1.7, np.nan, 0.5 / 255]]], np.float32)
    assert list(encode_pixels(values, "rgba8")) == [0, 255, 128, 51, 0, 255, 0, 0]
    assert np.frombuffer(encode_pixels(values, "rgba16"), "<u2").tolist() == [
        0, 65535, 32768, 13107, 0, 65535, 0, 128]
    # Float layers keep values outside [0, 1] (HDR) bit for bit.
    hdr = np.array([[[2.5, -0.25, 1e-8, 1.0]]], np.float32)
    assert np.array_equal(decode_pixels(encode_pixels(hdr, "rgbaf32"), 1, 1, "rgbaf32"), hdr)
    # half floats (Krita's F16 layers as they are) are little-endian IEEE binary16
    assert decode_raw(b"\x00\x3c\x00\xc0\x00\x38\x00\x00", 1, 1, "rgbaf16").tolist() == [
        [[1.0, -2.0, 0.5, 0.0]]]
    assert encode_pixels(np.array([[[1.0, -2.0, 0.5, 0.0]]], np.float32), "rgbaf16") == \
        b"\x00\x3c\x00\xc0\x00\x38\x00\x00"
    with pytest.raises(RegionError):
        encode_pixels(np.zeros((2, 2, 3), np.float32), "rgba8")
    with pytest.raises(RegionError):
        decode_pixels(b"\x00" * 4, 1, 1, "bgra8")


def test_srgb_formulas() -> None:
    assert srgb_to_linear(0.5) == pytest.approx(0.21404114048223255, abs=1e-12)
    assert linear_to_srgb(0.21404114048223255) == pytest.approx(0.5, abs=1e-12)
    assert srgb_to_linear(0.04) == pytest.approx(0.04 / 12.92)
    assert linear_to_srgb(0.003) == pytest.approx(0.003 * 12.92)
    assert srgb_to_linear(1.0) == pytest.approx(1.0) and linear_to_srgb(0.0) == 0.0
    x = np.linspace(0.0, 1.0, 100001)
    # The standard's two knees (0.04045 vs 0.0031308·12.92) differ by ~3e-8.
    assert np.abs(linear_to_srgb(srgb_to_linear(x)) - x).max() < 1e-7
    assert np.all(np.diff(srgb_to_linear(x)) > 0)  # monotone, continuous at the knee
    x32 = x.astype(np.float32)
    assert srgb_to_linear(x32).dtype == np.float32
    assert np.abs(srgb_to_linear(x32) - srgb_to_linear(x)).max() < 1e-6
    t = torch.from_numpy(x)
    assert np.allclose(srgb_to_linear(t).numpy(), srgb_to_linear(x), atol=1e-12)
    assert np.allclose(linear_to_srgb(t).numpy(), linear_to_srgb(x), atol=1e-12)


# --------------------------------------------------------------------------- the guarantee


@pytest.mark.parametrize("fmt", RGBA_FORMATS)
@pytest.mark.parametrize("transfer", ["srgb", "linear"])
@pytest.mark.parametrize(("mode", "feather"), [("render", 0.0), ("delta", 0.0), ("delta", 3.0)])
def test_outside_selection_untouched(fmt: str, transfer: str, mode: str, feather: float) -> None:
    rng = np.random.default_rng(zlib.crc32(f"{fmt}{transfer}{mode}{feather}".encode()))
    w, h, offset = 53, 37, (11, -7)
    data = random_layer_bytes(rng, w, h, fmt)
    mask = random_soft_mask(rng, w, h)
    layer = decode_pixels(data, w, h, fmt)
    framed = frame_region(layer, decode_pixels(mask.tobytes(), w, h, "a8"), framing=Framing(),
                          resolution=32, transfer=transfer, fmt=fmt, offset=offset)
    edited = random_edit(rng, 32)
    patch = paste_back(framed, edited, inversion=framed.image, mode=mode, feather=feather)

    # Format and transfer in == out; the patch covers the selection's tight box.
    assert patch.fmt == fmt and patch.transfer == transfer
    assert patch.box == mask_bbox(mask.tobytes(), w, h).translate(*offset)
    encoded = patch.encode()
    assert len(encoded) == patch.width * patch.height * bytes_per_pixel(fmt)
    enc = decode_raw(encoded, patch.width, patch.height, fmt)

    # Zero selection → alpha exactly 0 (and RGB 0) in the patch.
    px, py = patch.offset[0] - offset[0], patch.offset[1] - offset[1]
    sel = mask[py:py + patch.height, px:px + patch.width]
    assert np.all(enc[sel == 0] == 0)
    assert np.all(patch.pixels[sel == 0] == 0)

    # Composite == original bit for bit wherever the selection is 0 (whole layer).
    raw = decode_raw(data, w, h, fmt)
    out = composite_over(raw, patch, offset=offset)
    assert out.dtype == raw.dtype and out.shape == raw.shape
    assert np.array_equal(bits(out[mask == 0]), bits(raw[mask == 0]))
    # ... the same through the float path.
    out_f = composite_over(layer, patch, offset=offset)
    assert np.array_equal(bits(out_f[mask == 0]), bits(layer[mask == 0]))
    # ... and the edit did change the selected pixels it covers (the test can fail).
    changed = np.any(out != raw, axis=2)[py:py + patch.height, px:px + patch.width]
    covered = patch.pixels[..., 3] >= 0.5
    assert covered.sum() > 30 and changed[covered].mean() > 0.8


@pytest.mark.parametrize("fmt", RGBA_FORMATS)
@pytest.mark.parametrize("transfer", ["srgb", "linear"])
def test_delta_identity_is_exact_and_keeps_depth(fmt: str, transfer: str) -> None:
    """edited == inversion → delta 0 → the patch is the original, at full bit depth."""
    rng = np.random.default_rng(7)
    w, h = 41, 29
    data = random_layer_bytes(rng, w, h, fmt)
    mask = random_soft_mask(rng, w, h)
    layer = decode_pixels(data, w, h, fmt)
    framed = frame_region(layer, mask, framing=Framing("box", 0.8), resolution=16,
                          transfer=transfer, fmt=fmt)
    inversion = random_edit(rng, 16)  # any reconstruction: only edited − inversion matters
    patch = paste_back(framed, inversion.clone(), inversion=inversion, mode="delta")
    b = patch.box
    raw = decode_raw(data, w, h, fmt)[b.y:b.y1, b.x:b.x1]
    enc = decode_raw(patch.encode(), b.w, b.h, fmt)
    keep = patch.pixels[..., 3] > 0
    assert keep.sum() > 50
    # RGB identical to the source's encoded values (an 8-bit detour would break rgba16,
    # any rounding would break rgbaf32).
    assert np.array_equal(bits(enc[..., :3][keep]), bits(raw[..., :3][keep]))
    assert np.array_equal(patch.pixels[..., :3][keep], layer[b.y:b.y1, b.x:b.x1, :3][keep])


def test_hdr_float_values_survive_delta_and_colour() -> None:
    rng = np.random.default_rng(8)
    layer = rng.uniform(0, 4, (20, 30, 4)).astype(np.float32)
    layer[..., 3] = 1.0
    mask = np.zeros((20, 30), np.float32)
    mask[4:15, 6:25] = 1.0
    framed = frame_region(layer, mask, framing=None, resolution=16, transfer="linear",
                          fmt="rgbaf32")
    patch = paste_back(framed, framed.image, inversion=framed.image, mode="delta")
    assert np.array_equal(patch.pixels[..., :3], layer[4:15, 6:25, :3])
    # the colour paste of no edit keeps them too (to float precision), above 1 included
    patch = paste_back(framed, framed.image, inversion=framed.image, mode="colour")
    assert np.allclose(patch.pixels[..., :3], layer[4:15, 6:25, :3], rtol=1e-3, atol=1e-3)


def test_colour_paste_recolours_what_the_inversion_missed() -> None:
    """The colour map the edit applied to the reconstruction reaches every pixel of the
    object's colour in the user's layer, also those the inversion lacks (a star's points),
    and leaves the background; the delta paste leaves those pixels as they were."""
    beige, orange, blue = (0.8, 0.75, 0.6), (1.0, 0.5, 0.1), (0.1, 0.3, 0.9)
    layer = np.ones((40, 40, 4), np.float32)
    layer[..., :3] = beige
    layer[12:28, 12:28, :3] = orange
    layer[6:12, 18:22, :3] = orange  # a point the inversion will miss
    mask = np.zeros((40, 40), np.float32)
    mask[4:30, 8:32] = 1.0
    framed = frame_region(layer, mask, framing=Framing("box", 0.8), resolution=32)
    inversion = framed.image.clone()
    colours = (inversion[0] + 1) / 2  # [3, R, R] in [0, 1]
    is_object = (colours - torch.tensor(orange)[:, None, None]).abs().sum(0) < 0.3
    width = is_object.sum(1)  # the point's rows hold a narrow run of the object's colour
    missed = is_object & ((width > 0) & (width < width.max() / 2))[:, None]
    colours[:, missed] = torch.tensor(beige)[:, None]
    inversion = colours[None] * 2 - 1
    # the edit: orange -> blue, beige kept, blends in between (an affine colour change)
    axis = torch.tensor(orange) - torch.tensor(beige)
    share = torch.einsum("chw,c->hw", colours - torch.tensor(beige)[:, None, None], axis)
    share = share / axis.dot(axis)
    moved = colours + share[None] * (torch.tensor(blue) - torch.tensor(orange))[:, None, None]
    edited = moved[None] * 2 - 1
    patch = paste_back(framed, edited, inversion=inversion, mode="colour")
    b = patch.box
    original = layer[b.y:b.y1, b.x:b.x1, :3]
    was_orange = np.abs(original - orange).sum(-1) < 1e-6
    was_beige = np.abs(original - beige).sum(-1) < 1e-6
    point = np.zeros_like(was_orange)
    point[6 - b.y:12 - b.y, 18 - b.x:22 - b.x] = True
    assert np.abs(patch.pixels[..., :3][was_orange] - blue).max() < 0.05
    assert np.abs(patch.pixels[..., :3][point] - blue).max() < 0.05
    assert np.abs(patch.pixels[..., :3][was_beige] - beige).max() < 0.02
    delta = paste_back(framed, edited, inversion=inversion, mode="delta")
    at_point = delta.pixels[..., :3][point]
    assert np.abs(at_point - orange).mean() < np.abs(at_point - blue).mean()
    same = paste_back(framed, inversion, inversion=inversion, mode="colour")
    assert np.abs(same.pixels[..., :3] - original).max() < 1e-4  # no edit, no change
    with pytest.raises(RegionError, match="inversion"):
        paste_back(framed, edited, mode="colour")


def test_keep_background_leaves_the_backgrounds_pixels_as_they_were() -> None:
    """An edit that shifts the whole frame's colour with the object's: with
    ``keep_background`` the user's pixels of the frame's background colour keep theirs
    exactly, in both pastes that carry a change, and the object still changes; without it
    the selection shows as a tinted box."""
    beige, orange = (0.8, 0.75, 0.6), (1.0, 0.5, 0.1)
    layer = np.ones((40, 40, 4), np.float32)
    layer[..., :3] = beige
    layer[14:26, 14:26, :3] = orange
    mask = np.zeros((40, 40), np.float32)
    mask[6:34, 6:34] = 1.0
    framed = frame_region(layer, mask, framing=Framing("box", 0.8), resolution=32)
    colours = (framed.image[0] + 1) / 2
    is_object = ((colours - torch.tensor(orange)[:, None, None]).abs().sum(0) < 0.3).float()
    shift = torch.tensor((-0.1, 0.05, 0.15))[:, None, None]  # the whole frame tinted
    blue = torch.tensor((0.1, 0.3, 0.9))[:, None, None]
    edited = (colours + shift + is_object * (blue - colours)).clamp(0, 1)[None] * 2 - 1
    b = Box(6, 6, 28, 28)
    original = layer[b.y:b.y1, b.x:b.x1, :3]
    was_beige = np.abs(original - beige).sum(-1) < 1e-6
    was_orange = np.abs(original - orange).sum(-1) < 1e-6
    for mode in ("delta", "colour"):
        kept = paste_back(framed, edited, inversion=framed.image, mode=mode,
                          keep_background=True)
        assert kept.box == b
        assert np.array_equal(kept.pixels[..., :3][was_beige], original[was_beige])
        assert np.abs(kept.pixels[..., :3][was_orange] - orange).mean() > 0.3  # recoloured
        tinted = paste_back(framed, edited, inversion=framed.image, mode=mode)
        assert np.abs(tinted.pixels[..., :3][was_beige] - beige).mean() > 0.05
    # the render paste lays the render's object over the user's background
    render = paste_back(framed, edited, mode="render", keep_background=True)
    assert np.array_equal(render.pixels[..., :3][was_beige], original[was_beige])
    assert np.abs(render.pixels[..., :3][was_orange] - (0.1, 0.3, 0.9)).mean() < 0.1
    assert np.abs(paste_back(framed, edited, mode="render").pixels[..., :3][was_beige]
                  - beige).mean() > 0.05


def test_object_weight_is_the_distance_from_the_frames_border_colour() -> None:
    frame = torch.full((1, 3, 8, 8), 0.2)
    frame[..., 3:5, 3:5] = -0.8
    background = background_colour(frame)
    assert np.allclose(background, 0.6)
    rgb = np.stack([np.full((2, 3), v, np.float32) for v in (0.6, 0.63, 0.1)], axis=0)
    rgb = np.repeat(rgb[..., None], 3, axis=-1)  # rows: the background, its noise, an object
    weight = object_weight(rgb, background)
    assert (weight[0] == 0).all() and (weight[1] == 0).all() and (weight[2] == 1).all()


def test_soft_edges_and_feather() -> None:
    rng = np.random.default_rng(9)
    w, h = 60, 50
    data = random_layer_bytes(rng, w, h, "rgba8", opaque=True)
    mask = random_soft_mask(rng, w, h)
    mask[10:40, 15:45] = 255  # a solid core
    layer = decode_pixels(data, w, h, "rgba8")
    framed = frame_region(layer, mask, framing=Framing(), resolution=32, fmt="rgba8")
    edit = random_edit(rng, 32)
    b = framed.patch_box
    sel = mask[b.y:b.y1, b.x:b.x1]

    plain = paste_back(framed, edit, mode="render")
    alpha = decode_raw(plain.encode(), b.w, b.h, "rgba8")[..., 3]
    assert np.array_equal(alpha, sel)  # opaque layer, no feather: alpha is the selection

    feathered = paste_back(framed, edit, mode="render", feather=6.0)
    f_alpha = decode_raw(feathered.encode(), b.w, b.h, "rgba8")[..., 3]
    assert np.all(f_alpha <= sel)  # inward only, never grown
    assert np.all(f_alpha[sel == 0] == 0)
    assert (f_alpha < sel).mean() > 0.1  # the edge did soften
    core = np.zeros_like(sel, dtype=bool)
    core[10 - b.y + 8:40 - b.y - 8, 15 - b.x + 8:45 - b.x - 8] = True
    assert np.all(f_alpha[core] >= 250)  # far from the edge it stays solid


def test_feather_does_not_eat_the_crop_edge() -> None:
    """A selection running off the crop (the canvas edge) is not feathered along that edge."""
    layer = np.ones((30, 40, 4), np.float32)
    patch = paste_back(*_identity(layer, np.ones((30, 40), np.uint8) * 255), feather=5.0)
    assert np.all(patch.pixels[..., 3] == 1.0)


def _identity(layer: np.ndarray, mask: np.ndarray | None, **kw: object):
    framed = frame_region(layer, mask, framing=Framing(), resolution=16, **kw)
    return framed, framed.image


def test_transparent_layer_keeps_source_alpha() -> None:
    rng = np.random.default_rng(10)
    w, h = 45, 33
    data = random_layer_bytes(rng, w, h, "rgba16")
    raw = decode_raw(data, w, h, "rgba16")
    mask = random_soft_mask(rng, w, h)
    framed = frame_region(decode_pixels(data, w, h, "rgba16"), mask, framing=Framing(),
                          resolution=24, fmt="rgba16")
    patch = paste_back(framed, random_edit(rng, 24), mode="render")
    b = patch.box
    alpha = decode_raw(patch.encode(), b.w, b.h, "rgba16")[..., 3].astype(np.int64)
    src = raw[b.y:b.y1, b.x:b.x1, 3].astype(np.int64)
    sel = mask[b.y:b.y1, b.x:b.x1].astype(np.int64)
    expected = np.rint(sel / 255 * src)
    assert np.abs(alpha - expected).max() <= 1
    assert np.all(alpha[(src == 0) | (sel == 0)] == 0)


def test_fully_transparent_layer_frames_as_background() -> None:
    layer = np.zeros((20, 20, 4), np.float32)
    layer[..., :3] = 0.3  # hidden colour must not leak into the frame
    mask = np.zeros((20, 20), np.uint8)
    mask[5:15, 5:15] = 255
    white = frame_region(layer, mask, framing=Framing(), resolution=8)
    assert torch.allclose(white.image, torch.ones_like(white.image))
    black = frame_region(layer, mask, framing=Framing(), resolution=8,
                         background_rgb=(0.0, 0.0, 0.0), transfer="linear")
    assert torch.allclose(black.image, -torch.ones_like(black.image))


# --------------------------------------------------------------------------- framing


def _interp(img: np.ndarray, res: int, mode: str = "bilinear") -> np.ndarray:
    t = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None]
    out = F.interpolate(t, size=(res, res), mode=mode, antialias=True, align_corners=False)
    return out[0].numpy().transpose(1, 2, 0)


@pytest.mark.parametrize("kernel", ["bilinear", "bicubic"])
def test_frame_matches_torch_interpolate(kernel: str) -> None:
    rng = np.random.default_rng(11)
    layer = rng.random((100, 100, 4), dtype=np.float32)
    layer[..., 3] = 1.0
    mask = np.zeros((100, 100), np.float32)
    mask[40:50, 40:50] = 1.0
    framed = frame_region(layer, mask, framing=Framing(), resolution=24, kernel=kernel)
    assert framed.square == Box(1, 1, 88, 88)  # inside the layer: no replication
    expected = np.clip(_interp(layer[1:89, 1:89, :3], 24, kernel), 0, 1) * 2 - 1
    got = framed.image[0].numpy().transpose(1, 2, 0)
    assert np.abs(got - expected).max() < 1e-5
    expected_mask = _interp(mask[1:89, 1:89, None], 24)[..., 0]
    assert np.abs(framed.mask[0, 0].numpy() - expected_mask).max() < 1e-5


@pytest.mark.parametrize(("kernel", "selection"), [
    ("bicubic", (slice(30, 70), slice(20, 90))),  # square > R: an upscale
    ("bilinear", (slice(40, 43), slice(50, 52))),  # square < R: an antialiased downscale
])
def test_render_paste_matches_torch_resize_and_crop(kernel: str,
                                                    selection: tuple[slice, slice]) -> None:
    rng = np.random.default_rng(19)
    layer = np.ones((100, 120, 4), np.float32)
    mask = np.zeros((100, 120), np.float32)
    mask[selection] = 1.0
    framed = frame_region(layer, mask, framing=Framing("box", 0.9), resolution=24)
    sq, box = framed.square, framed.patch_box
    edit = random_edit(rng, 24)
    patch = paste_back(framed, edit, mode="render", kernel=kernel)
    big = F.interpolate((edit + 1) / 2, size=(sq.w, sq.w), mode=kernel, antialias=True)
    want = big[0].numpy().transpose(1, 2, 0).clip(0, 1)
    want = want[box.y - sq.y:box.y1 - sq.y, box.x - sq.x:box.x1 - sq.x]
    assert np.abs(patch.pixels[..., :3] - want).max() < 1e-5


def test_frame_past_the_canvas_replicates_edges() -> None:
    rng = np.random.default_rng(12)
    layer = rng.random((50, 70, 4), dtype=np.float32)
    layer[..., 3] = 1.0
    mask = np.zeros((50, 70), np.uint8)
    mask[0:12, 60:70] = 200  # touches the top and right edges
    framed = frame_region(layer, mask, framing=Framing(), resolution=32)
    sq = framed.square
    assert sq.x1 > 70 and sq.y < 0  # the model square extends past the canvas
    # Materialise the square with edge replication and zero-padded mask, then resize.
    ys = np.clip(np.arange(sq.y, sq.y1), 0, 49)
    xs = np.clip(np.arange(sq.x, sq.x1), 0, 69)
    full = layer[ys][:, xs, :3]
    expected = _interp(full, 32) * 2 - 1
    assert np.abs(framed.image[0].numpy().transpose(1, 2, 0) - expected).max() < 1e-5
    padded = np.zeros((sq.h, sq.w, 1), np.float32)
    inside = Box(*sq).intersect(Box(0, 0, 70, 50))
    padded[inside.y - sq.y:inside.y1 - sq.y, inside.x - sq.x:inside.x1 - sq.x, 0] = (
        mask[inside.y:inside.y1, inside.x:inside.x1] / 255)
    assert np.abs(framed.mask[0, 0].numpy() - _interp(padded, 32)[..., 0]).max() < 1e-5
    # Paste-back stays inside the canvas and guarantees the rest.
    patch = paste_back(framed, random_edit(rng, 32), mode="render")
    assert patch.box == Box(60, 0, 10, 12)


def test_linear_layer_frames_like_its_srgb_twin() -> None:
    rng = np.random.default_rng(13)
    srgb = rng.random((40, 40, 4), dtype=np.float32)
    srgb[..., 3] = 1.0
    lin = srgb.copy()
    lin[..., :3] = srgb_to_linear(srgb[..., :3])
    mask = np.zeros((40, 40), np.float32)
    mask[10:30, 12:28] = 1
    a = frame_region(srgb, mask, framing=Framing(), resolution=16)
    b = frame_region(lin, mask, framing=Framing(), resolution=16, transfer="linear")
    assert torch.allclose(a.image, b.image, atol=1e-5)
    # A mid-grey render comes back as linear mid-grey in a linear layer.
    grey = torch.zeros(1, 3, 16, 16)  # 0 in [-1, 1] = 0.5 sRGB
    patch = paste_back(b, grey, mode="render")
    assert np.allclose(patch.pixels[..., :3], srgb_to_linear(0.5), atol=1e-5)


def test_render_identity_is_close_on_smooth_images() -> None:
    yy, xx = np.mgrid[0:120, 0:90].astype(np.float32)
    layer = np.stack([xx / 90, yy / 120, 0.5 + 0.4 * np.sin(xx / 15) * np.cos(yy / 17),
                      np.ones_like(xx)], axis=2)
    mask = np.zeros((120, 90), np.float32)
    mask[20:100, 15:80] = 1.0
    for transfer in ("srgb", "linear"):
        framed = frame_region(layer, mask, framing=Framing(), resolution=64, transfer=transfer)
        patch = paste_back(framed, framed.image, mode="render")
        got = patch.pixels[..., :3]
        want = layer[20:100, 15:80, :3]
        err = np.abs(got - want)
        assert err.mean() < 0.01 and err.max() < 0.06, (transfer, err.mean(), err.max())


def test_box_framing_square_and_coverage() -> None:
    layer = np.full((200, 300, 4), 0.5, np.float32)
    mask = np.zeros((200, 300), np.uint8)
    mask[60:130, 100:170] = 255  # a 70-px square
    framed = frame_region(layer, mask, framing={"kind": "box", "factor": 0.7}, resolution=50)
    assert framed.square == Box(85, 45, 100, 100)
    # The selection covers 70% of the frame's side, centred.
    frame_mask = framed.mask[0, 0].numpy()
    assert frame_mask.sum() == pytest.approx(35 * 35, rel=0.01)
    # Frame rows 7.5 .. 42.5 hold it: half-covered edge rows, full inside, centred.
    assert np.allclose(frame_mask, frame_mask[::-1, ::-1], atol=1e-6)
    assert np.allclose(frame_mask[8:42, 8:42], 1.0, atol=1e-6)
    assert frame_mask[7, 25] == pytest.approx(0.5, abs=1e-6)
    assert np.all(frame_mask[:7] == 0) and np.all(frame_mask[:, 43:] == 0)
    # to_frame maps the selection box to [0.15, 0.85].
    assert framed.transform.to_frame(100, 60) == pytest.approx((0.15, 0.15))
    assert framed.transform.to_frame(170, 130) == pytest.approx((0.85, 0.85))


def test_offsets_are_document_coordinates() -> None:
    rng = np.random.default_rng(14)
    layer = rng.random((30, 40, 4), dtype=np.float32)
    mask = random_soft_mask(rng, 40, 30)
    a = frame_region(layer, mask, framing=Framing(), resolution=16)
    b = frame_region(layer, mask, framing=Framing(), resolution=16, offset=(100, 50))
    assert b.square == a.square.translate(100, 50)
    assert b.patch_box == a.patch_box.translate(100, 50)
    assert b.selection_box == a.selection_box.translate(100, 50)
    assert torch.equal(a.image, b.image) and torch.equal(a.mask, b.mask)
    pa = paste_back(a, a.image, mode="render")
    pb = paste_back(b, b.image, mode="render")
    assert pb.offset == (pa.offset[0] + 100, pa.offset[1] + 50)
    assert np.array_equal(pa.pixels, pb.pixels)


def test_plugin_crop_matches_whole_canvas() -> None:
    """The plugin sends only context_box; the engine must frame exactly what it would from
    the whole canvas, and the patch must land at the same document position."""
    rng = np.random.default_rng(15)
    cw, ch = 160, 120
    canvas = rng.random((ch, cw, 4), dtype=np.float32)
    mask = np.zeros((ch, cw), np.uint8)
    mask[90:118, 130:158] = random_soft_mask(rng, 28, 28)  # near the bottom-right corner
    for framing in (Framing(), Framing("box", 0.6)):
        sel = mask_bbox(mask.tobytes(), cw, ch)
        ctx = context_box(sel, cw, ch, framing)
        crop = canvas[ctx.y:ctx.y1, ctx.x:ctx.x1]
        crop_mask = mask[ctx.y:ctx.y1, ctx.x:ctx.x1]
        whole = frame_region(canvas, mask, framing=framing, resolution=32)
        part = frame_region(crop, crop_mask, framing=framing, resolution=32,
                            offset=(ctx.x, ctx.y), selection_box=sel)
        assert part.square == whole.square == Box(*model_square(sel, framing)[:2],
                                                  *model_square(sel, framing)[2:] * 2)
        assert torch.allclose(part.image, whole.image, atol=1e-6)
        assert torch.allclose(part.mask, whole.mask, atol=1e-6)
        edit = random_edit(rng, 32)
        p1 = paste_back(whole, edit, inversion=whole.image, mode="delta", feather=2)
        p2 = paste_back(part, edit, inversion=part.image, mode="delta", feather=2)
        assert p1.box == p2.box
        assert np.allclose(p1.pixels, p2.pixels, atol=1e-6)


# --------------------------------------------------------------------------- shapes


def test_one_pixel_selection() -> None:
    rng = np.random.default_rng(16)
    data = random_layer_bytes(rng, 20, 15, "rgba8", opaque=True)
    mask = np.zeros((15, 20), np.uint8)
    mask[6, 9] = 200
    for framing in (Framing(), Framing("box", 1.0)):
        framed = frame_region(decode_pixels(data, 20, 15, "rgba8"), mask, framing=framing,
                              resolution=16, offset=(3, 4))
        patch = paste_back(framed, random_edit(rng, 16), mode="render")
        assert patch.box == Box(12, 10, 1, 1)
        assert decode_raw(patch.encode(), 1, 1, "rgba8")[0, 0, 3] == 200
    assert framed.square == Box(12, 10, 1, 1)  # box framing, F = 1: the pixel itself


def test_empty_selection_is_a_clear_error() -> None:
    layer = np.zeros((10, 10, 4), np.float32)
    with pytest.raises(RegionError, match="the selection is empty"):
        frame_region(layer, np.zeros((10, 10), np.uint8), framing=Framing(), resolution=8)
    with pytest.raises(ValueError):
        frame_region(layer, np.zeros((10, 10), np.float32), framing=Framing(), resolution=8)


def test_bad_inputs() -> None:
    layer = np.zeros((10, 12, 4), np.float32)
    with pytest.raises(RegionError):
        frame_region(layer, np.ones((12, 10), np.uint8), framing=Framing(), resolution=8)
    with pytest.raises(RegionError):
        frame_region(layer[..., :3], None, framing=Framing(), resolution=8)
    with pytest.raises(RegionError):
        frame_region(layer, None, framing=Framing(), resolution=0)
    with pytest.raises(RegionError):
        frame_region(layer, None, framing=Framing(), resolution=8, transfer="gamma22")
    framed = frame_region(layer, None, framing=Framing(), resolution=8)
    with pytest.raises(RegionError):
        paste_back(framed, torch.zeros(1, 3, 8, 8), mode="delta")  # needs the inversion
    with pytest.raises(RegionError):
        paste_back(framed, torch.zeros(1, 3, 16, 16))
    with pytest.raises(RegionError):
        paste_back(framed, torch.zeros(1, 3, 8, 8), mode="blend")  # type: ignore[arg-type]


@pytest.mark.parametrize("fmt", RGBA_FORMATS)
def test_full_selection_and_no_mask(fmt: str) -> None:
    rng = np.random.default_rng(17)
    w, h = 50, 20  # not square
    data = random_layer_bytes(rng, w, h, fmt)
    layer = decode_pixels(data, w, h, fmt)
    raw = decode_raw(data, w, h, fmt)
    full = frame_region(layer, np.full((h, w), 255, np.uint8), framing=Framing(),
                        resolution=16, fmt=fmt, offset=(5, 6))
    none = frame_region(layer, None, framing=Framing(), resolution=16, fmt=fmt, offset=(5, 6))
    # Without a mask the frame is the layer's bounding square, centred.
    assert none.square == Box(5, 6 - 15, 50, 50)
    assert none.patch_box == full.patch_box == Box(5, 6, 50, 20)
    m = none.mask[0, 0].numpy()
    assert np.allclose(m[:, 0], [0] * 5 + [1] * 6 + [0] * 5, atol=0.3)  # layer rows only
    assert np.allclose(m[6:10], 1.0, atol=1e-6)
    edit = random_edit(rng, 16)
    for framed in (full, none):
        patch = paste_back(framed, edit, mode="render")
        enc = decode_raw(patch.encode(), w, h, fmt)
        assert np.array_equal(bits(np.ascontiguousarray(enc[..., 3])),
                              bits(np.ascontiguousarray(raw[..., 3])))  # alpha = source alpha


def test_large_strip_layer_is_fast() -> None:
    rng = np.random.default_rng(18)
    w, h = 8000, 300
    raw = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
    raw[..., 3] = 255
    mask = np.zeros((h, w), np.uint8)
    mask[3:297, 10:7990] = 255
    mask[3:297, 10:40] = 128  # a soft margin
    layer = decode_pixels(raw.tobytes(), w, h, "rgba8")
    times = {}
    start = time.perf_counter()
    framed = frame_region(layer, mask, framing=Framing(), resolution=64, offset=(0, 2000))
    times["frame"] = time.perf_counter() - start
    edit = random_edit(rng, 64)
    start = time.perf_counter()
    patch = paste_back(framed, edit, inversion=framed.image, mode="delta", feather=4)
    times["delta"] = time.perf_counter() - start
    start = time.perf_counter()
    render = paste_back(framed, edit, mode="render")
    times["render"] = time.perf_counter() - start
    assert framed.square.w > 8000 and framed.image.shape == (1, 3, 64, 64)
    assert patch.box == Box(10, 2003, 7980, 294) == render.box
    out = composite_over(raw, patch, offset=(0, 2000))
    assert np.array_equal(out[mask == 0], raw[mask == 0])
    # "Well under a second" each on an idle machine; generous bound for a shared CI core.
    assert max(times.values()) < 1.5, times


# --------------------------------------------------------------------------- compositing


def test_composite_over_semantics() -> None:
    original = np.zeros((4, 5, 4), np.uint8)
    original[..., 0] = 200
    original[..., 3] = 255
    pixels = np.zeros((2, 3, 4), np.float32)
    pixels[0, 0] = (0.0, 1.0, 0.0, 1.0)  # opaque: replaces exactly
    pixels[0, 1] = (0.0, 0.0, 1.0, 0.5)  # half: blends
    patch = Patch(pixels=pixels, offset=(13, 21), fmt="rgba8")
    out = composite_over(original, patch, offset=(10, 20))  # patch at (3, 1) in the layer
    assert out[1, 3].tolist() == [0, 255, 0, 255]
    assert out[1, 4].tolist() == [100, 0, 128, 255]
    untouched = np.ones((4, 5), bool)
    untouched[1, 3:5] = False
    assert np.array_equal(out[untouched], original[untouched])  # incl. the clipped part
    # Over a transparent original the patch shows as it is.
    clear = np.zeros((4, 5, 4), np.float32)
    out_f = composite_over(clear, patch, offset=(10, 20))
    assert np.allclose(out_f[1, 4], [0, 0, 1, 0.5])
    # Fully off the layer: a copy.
    assert np.array_equal(composite_over(original, patch), original)


# --------------------------------------------------------------------------- metrics


def test_inversion_psnr() -> None:
    a = torch.zeros(1, 3, 8, 8)
    assert inversion_psnr(a, a) == float("inf")
    assert inversion_psnr(a, a + 0.2) == pytest.approx(20.0)  # 0.1 on the [0, 1] scale
    b = a.clone()
    b[..., :4] = 0.2  # error only in the left half
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 4:] = 1
    assert inversion_psnr(a, b, mask) == float("inf")
    assert inversion_psnr(a, b, 1 - mask) == pytest.approx(20.0)
    assert inversion_psnr(a, b) == pytest.approx(20.0 + 10 * np.log10(2))
    with pytest.raises(ValueError):
        inversion_psnr(a, b, torch.zeros(8, 8))


def test_formats_table() -> None:
    assert {f: bytes_per_pixel(f) for f in FORMATS} == {
        "rgba8": 4, "rgba16": 8, "rgbaf16": 8, "rgbaf32": 16, "a8": 1}
