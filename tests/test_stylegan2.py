"""Tests for the rosinality-layout StyleGAN2 generator and the safe stylegan2-ada importer.

Full-size (1024 px) generators are only built, saved and loaded here, never run: a forward pass
takes tens of seconds on CPU. Everything numerical uses a 32-px generator with small widths.
"""

from __future__ import annotations

import contextlib
import math
import os
import pickle
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from engine.models.stylegan2 import (
    MEAN_LATENT_SAMPLES,
    MEAN_LATENT_SEED,
    Blur,
    CheckpointLayoutError,
    Generator,
    SpatialStyleMix,
    Upsample,
    default_channels,
    load_rosinality,
    save_rosinality,
)
from engine.models.stylegan2_ada import AdaPickleError, load_stylegan2_ada, read_ada_pickle

SMALL_CHANNELS = {4: 32, 8: 32, 16: 16, 32: 8}
_ZERO_INIT = ("noise.weight", "activate.bias", "to_rgb1.bias")  # zero in a fresh generator


def _small_generator(seed: int = 0) -> Generator:
    """A 32-px generator whose biases and noise strengths are non-zero, so every weight counts."""
    torch.manual_seed(seed)
    g = Generator(32, style_dim=64, n_mlp=2, channels=SMALL_CHANNELS)
    with torch.no_grad():
        for name, p in g.named_parameters():
            if name.endswith(_ZERO_INIT) or (name.startswith("to_rgbs") and name.endswith("bias")):
                p.copy_(torch.randn_like(p) * 0.3)
    return g.eval()


@pytest.fixture(scope="module")
def g() -> Generator:
    return _small_generator()


def _w_plus(g: Generator, batch: int, seed: int) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        return g.mapping(torch.randn(batch * g.n_latent, g.style_dim, generator=gen)).view(
            batch, g.n_latent, g.style_dim
        )


def _rel_err(a: Tensor, b: Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


# ---------------------------------------------------------------------- full-size layout
def test_ffhq_1024_layout_and_strict_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    g = Generator(1024, style_dim=512, n_mlp=8, channel_multiplier=2)
    sd = g.state_dict()
    n_params = sum(1 for _ in g.parameters())
    assert sum(p.numel() for p in g.parameters()) == 30_370_060
    assert len(sd) == 171 and n_params == 138 and len(sd) - n_params == 33
    assert sum(k.startswith("noises.noise_") for k in sd) == 17
    assert sum(k.endswith(".kernel") for k in sd) == 16
    assert g.n_latent == 18 and g.num_layers == 17 and g.num_style_layers == 26
    assert tuple(sd["conv1.conv.weight"].shape) == (1, 512, 512, 3, 3)
    assert tuple(sd["style.8.weight"].shape) == (512, 512) and "style.0.weight" not in sd
    assert tuple(sd["convs.15.conv.weight"].shape) == (1, 32, 32, 3, 3)
    assert tuple(sd["to_rgbs.7.upsample.kernel"].shape) == (4, 4)

    avg = torch.randn(512)
    path = tmp_path / "ffhq.pt"
    torch.save({"g_ema": sd, "latent_avg": avg}, path)
    del g
    g2, avg2 = load_rosinality(path)  # size and widths inferred from the keys
    assert g2.size == 1024 and g2.channels == default_channels(2)
    sd2 = g2.state_dict()
    assert list(sd2) == list(sd)
    assert all(torch.equal(sd[k], sd2[k]) for k in sd)
    assert torch.equal(avg2, avg)
    g3, _ = load_rosinality(path, size=1024, channel_multiplier=2, style_dim=512, n_mlp=8)
    assert torch.equal(g3.state_dict()["style.3.weight"], sd["style.3.weight"])


# ---------------------------------------------------------------------- numerics (small)
def test_fused_equals_non_fused(g: Generator) -> None:
    w = _w_plus(g, 3, seed=1)
    with torch.no_grad():
        a = g.synthesis(w, fused=False)
        b = g.synthesis(w, fused=True)
    assert a.shape == (3, 3, 32, 32)
    assert _rel_err(a, b) < 1e-4


@pytest.mark.parametrize("factor", [1, 2])
def test_separable_fir_equals_upfirdn2d_as_depthwise_conv(factor: int) -> None:
    """The FIR filters run as two 1-D passes; check them against the plain 2-D definition
    (pad, then a true convolution of every channel with the stored kernel buffer)."""
    torch.manual_seed(0)
    x = torch.randn(2, 5, 9, 7)
    blur = Blur((1, 3, 3, 1), pad=(2, 1), upsample_factor=factor)
    k = torch.flip(blur.kernel, (0, 1))[None, None]
    padded = torch.nn.functional.pad(x, (2, 1, 2, 1))
    ref = torch.nn.functional.conv2d(padded.reshape(10, 1, 12, 10), k).reshape(2, 5, 9, 7)
    assert torch.allclose(blur(x), ref, atol=1e-6)
    up = Upsample((1, 3, 3, 1))
    zeros = x.new_zeros(2, 5, 9, 2, 7, 2)
    zeros[:, :, :, 0, :, 0] = x
    padded = torch.nn.functional.pad(zeros.reshape(2, 5, 18, 14), (2, 1, 2, 1))
    k = torch.flip(up.kernel, (0, 1))[None, None]
    ref = torch.nn.functional.conv2d(padded.reshape(10, 1, 21, 17), k).reshape(2, 5, 18, 14)
    assert torch.allclose(up(x), ref, atol=1e-6)


def test_fixed_noise_is_deterministic(g: Generator) -> None:
    w = _w_plus(g, 2, seed=2)
    with torch.no_grad():
        a, b = g.synthesis(w), g.synthesis(w, noise="fixed")
        r1, r2 = g.synthesis(w, noise="random"), g.synthesis(w, noise="random")
        z = torch.randn(2, g.style_dim, generator=torch.Generator().manual_seed(3))
        f1, _ = g(z)
        f2, _ = g(z)
        explicit = g.synthesis(w, noise=[g.noise_buffer(i) for i in range(g.num_layers)])
    assert torch.equal(a, b) and torch.equal(f1, f2) and torch.equal(a, explicit)
    assert not torch.equal(r1, r2)


def test_truncation_psi_zero_gives_mean_latent_image(g: Generator) -> None:
    mean = g.mean_latent(2000, seed=5)
    assert mean.shape == (1, g.style_dim)
    assert torch.equal(mean, g.mean_latent(2000, seed=5))
    z = torch.randn(2, g.style_dim)
    with torch.no_grad():
        img, lat = g(z, truncation=0.0, truncation_latent=mean, return_latents=True)
        ref = g.synthesis(mean.expand(2, -1))
        half, _ = g(z, truncation=0.5, truncation_latent=mean)
        w = g.mapping(z)
        manual = g.synthesis(mean + 0.5 * (w - mean))
    assert lat is not None and lat.shape == (2, g.n_latent, g.style_dim)
    torch.testing.assert_close(img, ref, rtol=0, atol=1e-6)
    torch.testing.assert_close(half, manual, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="truncation"):
        Generator(8, style_dim=8, n_mlp=1, channels={4: 4, 8: 4})(torch.randn(1, 8),
                                                                  truncation=0.7)


def test_style_space_round_trip_and_layer_order(g: Generator) -> None:
    w = _w_plus(g, 2, seed=6)
    with torch.no_grad():
        styles = g.styles(w)
        a = g.synthesis(w)
        b = g.synthesis_from_styles(styles)
    assert torch.equal(a, b)
    assert len(styles) == g.num_style_layers == 2 + 3 * (int(math.log2(g.size)) - 2)
    names = [lay.name for lay in g.style_layers]
    assert names[:5] == ["conv1", "to_rgb1", "convs.0", "convs.1", "to_rgbs.0"]
    assert [lay.w_index for lay in g.style_layers] == [0, 1, 1, 2, 3, 3, 4, 5, 5, 6, 7]
    for s, lay in zip(styles, g.style_layers, strict=True):
        assert s.shape == (2, lay.channels)
    # W+ index 1 feeds exactly to_rgb1 and the first upsampling conv
    w2 = w.clone()
    w2[:, 1] += 1.0
    with torch.no_grad():
        changed = [not torch.equal(x, y) for x, y in zip(styles, g.styles(w2), strict=True)]
    assert [i for i, c in enumerate(changed) if c] == [1, 2]


def test_spatial_style_mix_extremes(g: Generator) -> None:
    w_fixed, w_edit = _w_plus(g, 1, seed=7), _w_plus(g, 1, seed=8)
    with torch.no_grad():
        fixed, edited = g.styles(w_fixed), g.styles(w_edit)
        img_fixed = g.synthesis_from_styles(fixed)
        img_edit = g.synthesis_from_styles(edited)
        ones = SpatialStyleMix.from_mask(fixed, torch.ones(1, 1, 32, 32), g.size, demod="mixed")
        zeros = SpatialStyleMix.from_mask(fixed, torch.zeros(1, 1, 32, 32), g.size)
        zeros_mixed = SpatialStyleMix(fixed, {32: torch.zeros(1, 1, 32, 32)}, demod="mixed")
        ones_fixed = SpatialStyleMix(fixed, {32: torch.ones(1, 1, 32, 32)}, demod="fixed")
        assert torch.equal(g.synthesis_from_styles(edited, style_mix=ones), img_edit)
        assert torch.equal(g.synthesis_from_styles(edited, style_mix=zeros), img_fixed)
        assert torch.equal(g.synthesis_from_styles(edited, style_mix=zeros_mixed), img_fixed)
        # Paint-by-Word's fixed-style demodulation: m == 1 is close to, not equal to, the edit
        pbw = g.synthesis_from_styles(edited, style_mix=ones_fixed)
        assert not torch.equal(pbw, img_edit)
    assert sorted(ones.masks) == [4, 8, 16, 32]
    assert ones_fixed.mask_at(8).shape == (1, 1, 8, 8)

    # a half mask mixes, and gradients reach the edited styles (what an optimiser needs)
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., :, 16:] = 1
    mix = SpatialStyleMix.from_mask(fixed, mask, g.size)
    edit = [s.clone().requires_grad_(True) for s in edited]
    out = g.synthesis_from_styles(edit, style_mix=mix)
    assert not torch.equal(out.detach(), img_fixed) and not torch.equal(out.detach(), img_edit)
    out.square().mean().backward()
    assert all(s.grad is not None and s.grad.abs().sum() > 0 for s in edit)


# ---------------------------------------------------------------------- checkpoints (small)
def test_save_load_round_trip_fp32_and_fp16(g: Generator, tmp_path: Path) -> None:
    avg = torch.randn(g.style_dim)
    w = _w_plus(g, 1, seed=9)
    with torch.no_grad():
        ref = g.synthesis(w)
    p32, p16 = tmp_path / "g32.pt", tmp_path / "g16.pt"
    save_rosinality(g, p32, avg)
    save_rosinality(g, p16, avg, dtype=torch.float16)
    raw = torch.load(p16, weights_only=True)
    assert set(raw) == {"g_ema", "latent_avg"} and raw["g_ema"]["style.1.weight"].dtype == (
        torch.float16)

    g32, avg32 = load_rosinality(p32)
    assert all(torch.equal(v, g32.state_dict()[k]) for k, v in g.state_dict().items())
    assert torch.equal(avg32, avg) and torch.equal(g32.latent_avg, avg)
    g16, avg16 = load_rosinality(p16, size=32)
    assert all(v.dtype == torch.float32 for v in g16.state_dict().values())
    assert all(torch.equal(v.half().float(), g16.state_dict()[k])
               for k, v in g.state_dict().items())
    torch.testing.assert_close(avg16, avg.half().float())
    with torch.no_grad():
        assert torch.equal(g32.synthesis(w), ref)
        assert _rel_err(g16.synthesis(w), ref) < 1e-2


def test_layout_mismatch_errors_name_file_and_keys(g: Generator, tmp_path: Path) -> None:
    sd = dict(g.state_dict())
    missing = dict(sd)
    del missing["convs.1.noise.weight"]
    path = tmp_path / "broken.pt"
    torch.save({"g_ema": missing, "latent_avg": torch.zeros(g.style_dim)}, path)
    with pytest.raises(CheckpointLayoutError) as e:
        load_rosinality(path)
    assert str(path) in str(e.value) and "convs.1.noise.weight" in str(e.value)

    extra = dict(sd)
    extra["convs.1.bonus"] = torch.zeros(1)
    with pytest.raises(CheckpointLayoutError, match=r"unexpected.*convs\.1\.bonus"):
        load_rosinality({"g_ema": extra})

    # a wrong config gets a short message (first keys only), not a 100-key dump
    with pytest.raises(CheckpointLayoutError) as e2:
        load_rosinality({"g_ema": sd}, channel_multiplier=2)
    assert "shape mismatch" in str(e2.value) and len(str(e2.value)) < 800
    with pytest.raises(CheckpointLayoutError, match=r"64px|32px"):
        load_rosinality({"g_ema": sd}, size=64)
    with pytest.raises(CheckpointLayoutError, match="g_ema"):
        load_rosinality({"weights": sd})


def test_missing_latent_avg_uses_seeded_mean(g: Generator, tmp_path: Path) -> None:
    path = tmp_path / "no_avg.pt"
    torch.save({"g_ema": g.state_dict()}, path)
    state = torch.get_rng_state()
    _, avg1 = load_rosinality(path)
    _, avg2 = load_rosinality(path)
    assert torch.equal(torch.get_rng_state(), state)
    assert avg1.shape == (g.style_dim,) and torch.equal(avg1, avg2)
    torch.testing.assert_close(avg1, g.mean_latent(MEAN_LATENT_SAMPLES, seed=MEAN_LATENT_SEED)[0])


def test_e4e_style_checkpoint(g: Generator) -> None:
    avg = torch.randn(g.style_dim)
    ckpt = {
        "state_dict": {"encoder.body.0.weight": torch.zeros(2)}
        | {f"decoder.{k}": v for k, v in g.state_dict().items()},
        "latent_avg": avg.repeat(g.n_latent, 1),
        "opts": {"stylegan_size": 32},
    }
    g2, avg2 = load_rosinality(ckpt)
    assert all(torch.equal(v, g2.state_dict()[k]) for k, v in g.state_dict().items())
    torch.testing.assert_close(avg2, avg)


# ---------------------------------------------------------------------- stylegan2-ada pickles
_STD_FILTER = torch.outer(torch.tensor([1.0, 3, 3, 1]), torch.tensor([1.0, 3, 3, 1])) / 64


class _AdaStandIn(nn.Module):
    """Pickles like a ``torch_utils.persistence`` object: ``_reconstruct_persistent_obj(meta)``."""

    def __init__(self, class_name: str) -> None:
        super().__init__()
        self._class_name = class_name

    def __reduce__(self) -> tuple[object, ...]:
        state = dict(self.__dict__)
        state.pop("_class_name")
        meta = {"type": "class", "version": 6, "class_name": self._class_name, "state": state,
                "module_src": "raise SystemExit('pickled source must never run')"}
        return (sys.modules["torch_utils.persistence"]._reconstruct_persistent_obj, (meta,))


def _ada_module(class_name: str, params: dict[str, Tensor] | None = None,
                buffers: dict[str, Tensor] | None = None,
                children: dict[str, nn.Module] | None = None, **attrs: object) -> _AdaStandIn:
    m = _AdaStandIn(class_name)
    for k, v in (params or {}).items():
        m.register_parameter(k, nn.Parameter(v.detach().clone()))
    for k, v in (buffers or {}).items():
        m.register_buffer(k, v.detach().clone())
    for k, c in (children or {}).items():
        m.add_module(k, c)
    for k, v in attrs.items():
        setattr(m, k, v)
    return m


def _ada_tree(g: Generator, w_avg: Tensor, fc0_lr: float = 0.01) -> _AdaStandIn:
    """Rebuild ``g`` in stylegan2-ada's module layout (the inverse of the importer's name map)."""
    sd = g.state_dict()

    def fc(w: Tensor, b: Tensor, lr: float = 1.0) -> _AdaStandIn:
        return _ada_module("FullyConnectedLayer", {"weight": w, "bias": b},
                           weight_gain=np.float64(lr / math.sqrt(w.shape[1])),
                           bias_gain=np.float64(lr), activation="linear")

    fcs = {}
    for i in range(g.n_mlp):
        w, b = sd[f"style.{i + 1}.weight"], sd[f"style.{i + 1}.bias"]
        lr = fc0_lr if i == 0 else 0.01
        fcs[f"fc{i}"] = fc(w * 0.01 / lr, b * 0.01 / lr, lr)  # same effective weights
    mapping = _ada_module("MappingNetwork", buffers={"w_avg": w_avg}, children=fcs,
                          z_dim=g.style_dim, c_dim=0, w_dim=g.style_dim, num_ws=g.n_latent)

    def layer(ros: str, noise: int, up: int) -> _AdaStandIn:
        return _ada_module(
            "SynthesisLayer",
            {"weight": sd[f"{ros}.conv.weight"][0],
             "noise_strength": sd[f"{ros}.noise.weight"].reshape(()),
             "bias": sd[f"{ros}.activate.bias"]},
            {"resample_filter": _STD_FILTER, "noise_const": sd[f"noises.noise_{noise}"][0, 0]},
            {"affine": fc(sd[f"{ros}.conv.modulation.weight"], sd[f"{ros}.conv.modulation.bias"])},
            up=up, activation="lrelu", act_gain=np.float64(math.sqrt(2)), conv_clamp=256,
        )

    def torgb(ros: str) -> _AdaStandIn:
        w = sd[f"{ros}.conv.weight"][0]
        return _ada_module(
            "ToRGBLayer", {"weight": w, "bias": sd[f"{ros}.bias"].reshape(3)}, None,
            {"affine": fc(sd[f"{ros}.conv.modulation.weight"], sd[f"{ros}.conv.modulation.bias"])},
            weight_gain=np.float64(1 / math.sqrt(w.shape[1])),
        )

    blocks = {"b4": _ada_module(
        "SynthesisBlock", {"const": sd["input.input"][0]}, {"resample_filter": _STD_FILTER},
        {"conv1": layer("conv1", 0, 1), "torgb": torgb("to_rgb1")},
        architecture="skip", in_channels=0, use_fp16=False)}
    for k in range(len(g.to_rgbs)):
        blocks[f"b{2 ** (k + 3)}"] = _ada_module(
            "SynthesisBlock", None, {"resample_filter": _STD_FILTER},
            {"conv0": layer(f"convs.{2 * k}", 2 * k + 1, 2),
             "conv1": layer(f"convs.{2 * k + 1}", 2 * k + 2, 1),
             "torgb": torgb(f"to_rgbs.{k}")},
            architecture="skip", use_fp16=False)
    synthesis = _ada_module("SynthesisNetwork", children=blocks, w_dim=g.style_dim,
                            img_resolution=g.size, img_channels=3)
    easy = sys.modules["dnnlib.util"].EasyDict  # type: ignore[attr-defined]
    return _ada_module("Generator", children={"mapping": mapping, "synthesis": synthesis},
                       z_dim=g.style_dim, c_dim=0, w_dim=g.style_dim, img_resolution=g.size,
                       img_channels=3, _init_args=(),
                       _init_kwargs=easy(mapping_kwargs=easy(num_layers=g.n_mlp)))


@contextlib.contextmanager
def _standin_modules() -> Iterator[type[dict]]:  # type: ignore[type-arg]
    """Throwaway ``torch_utils.persistence`` / ``dnnlib.util`` modules, present only while writing.

    Yields the stand-in ``EasyDict`` class.
    """

    def _reconstruct_persistent_obj(meta: object) -> object:
        raise AssertionError("the importer must never call the pickled reconstructor")

    class EasyDict(dict):  # type: ignore[type-arg]
        pass

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    EasyDict.__module__, EasyDict.__qualname__ = "dnnlib.util", "EasyDict"
    mods = {name: types.ModuleType(name) for name in
            ("torch_utils", "torch_utils.persistence", "dnnlib", "dnnlib.util")}
    mods["torch_utils.persistence"]._reconstruct_persistent_obj = (  # type: ignore[attr-defined]
        _reconstruct_persistent_obj)
    mods["dnnlib.util"].EasyDict = EasyDict  # type: ignore[attr-defined]
    with pytest.MonkeyPatch.context() as mp:
        for name, mod in mods.items():
            mp.setitem(sys.modules, name, mod)
        yield EasyDict


def _ada_pickle_bytes(g: Generator, w_avg: Tensor, fc0_lr: float = 0.01) -> bytes:
    with _standin_modules() as easy:
        tree = _ada_tree(g, w_avg, fc0_lr=fc0_lr)
        data = {"G": tree, "D": None, "G_ema": tree, "augment_pipe": None,
                "training_set_kwargs": easy(path="data.zip", resolution=g.size)}
        return pickle.dumps(data, protocol=4)


def test_ada_pickle_import_matches_source_generator(g: Generator, tmp_path: Path) -> None:
    w_avg = torch.randn(g.style_dim)
    blob = _ada_pickle_bytes(g, w_avg, fc0_lr=0.02)
    assert b"_reconstruct_persistent_obj" in blob and b"numpy" in blob
    assert "torch_utils" not in sys.modules and "dnnlib" not in sys.modules
    path = tmp_path / "network-snapshot.pkl"
    path.write_bytes(blob)

    g2, avg = load_stylegan2_ada(path)
    assert "torch_utils" not in sys.modules and "dnnlib" not in sys.modules
    assert (g2.size, g2.style_dim, g2.n_mlp, g2.channels) == (
        g.size, g.style_dim, g.n_mlp, g.channels)
    assert torch.equal(avg, w_avg)
    sd, sd2 = g.state_dict(), g2.state_dict()
    assert list(sd) == list(sd2)
    for k in sd:
        if k.startswith("style.1."):  # fc0 went through the lr-multiplier rescale
            torch.testing.assert_close(sd2[k], sd[k], rtol=1e-6, atol=0)
        else:
            assert torch.equal(sd2[k], sd[k]), k
    w = _w_plus(g, 2, seed=10)
    with torch.no_grad():
        torch.testing.assert_close(g2.synthesis(w), g.synthesis(w), rtol=0, atol=1e-6)

    top = read_ada_pickle(blob)  # the inert tree is inspectable
    assert top["G_ema"].class_name == "Generator" and top["training_set_kwargs"]["resolution"] == 32


class _Evil:
    def __init__(self, func: object, arg: str) -> None:
        self.func, self.arg = func, arg

    def __reduce__(self) -> tuple[object, ...]:
        return (self.func, (self.arg,))


def test_pack_create_takes_an_ada_pickle(g: Generator, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """``wordbrush pack create --generator network-snapshot.pkl`` converts NVIDIA's file to
    rosinality's layout in the pack (nothing pickled runs) and verifies it."""
    from engine.cli import main
    from engine.packs import PackRegistry

    w_avg = torch.randn(g.style_dim)
    pkl = tmp_path / "network-snapshot.pkl"
    pkl.write_bytes(_ada_pickle_bytes(g, w_avg))
    out = tmp_path / "packs" / "ada"
    code = main(["pack", "create", "ada", "--generator", str(pkl), "--resolution", str(g.size),
                 "--random-clip", "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    assert (out / "generator.pt").is_file() and not (out / "generator.pkl").exists()
    loaded = PackRegistry([out.parent]).get("ada").get("generator")
    for k, v in g.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[k], v, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(loaded.latent_avg, w_avg)
    (tmp_path / "junk.pkl").write_bytes(b"not a pickle")
    code = main(["pack", "create", "junk", "--generator", str(tmp_path / "junk.pkl"),
                 "--resolution", str(g.size), "--random-clip", "--out", str(tmp_path / "j")])
    assert code != 0 and "StyleGAN2-ADA" in capsys.readouterr().err
    assert not (tmp_path / "j").exists()


@pytest.mark.parametrize("kind", ["os.system", "builtins.exec", "nested"])
def test_ada_refuses_code_execution(kind: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    if kind == "os.system":
        payload: object = {"G_ema": _Evil(os.system, f"touch {marker}")}
    elif kind == "builtins.exec":
        payload = {"G_ema": _Evil(exec, f"open({str(marker)!r}, 'w').close()")}
    else:  # hidden deep inside otherwise legitimate containers
        payload = {"G_ema": None, "training_set_kwargs": [{"x": (1, _Evil(os.system,
                                                                           f"touch {marker}"))}]}
    blob = pickle.dumps(payload, protocol=2)
    with pytest.raises(AdaPickleError, match="refusing to load global"):
        load_stylegan2_ada(blob)
    with pytest.raises(AdaPickleError, match=r"system|exec"):
        read_ada_pickle(blob)
    assert not marker.exists()


def test_ada_refuses_other_generators(tmp_path: Path) -> None:
    # a StyleGAN3-like module in the tree is refused by class name
    with _standin_modules():
        root = _ada_module("Generator", children={
            "synthesis": _ada_module("SynthesisNetwork", children={
                "input": _ada_module("SynthesisInput", {"freqs": torch.zeros(4, 2)})})})
        blob = pickle.dumps({"G_ema": root})
    with pytest.raises(AdaPickleError, match="SynthesisInput"):
        load_stylegan2_ada(blob)
    # a torch.save zip is pointed at load_rosinality
    path = tmp_path / "x.pt"
    torch.save({"g_ema": {}}, path)
    with pytest.raises(AdaPickleError, match="load_rosinality"):
        load_stylegan2_ada(path)


def test_synthesis_macs_counts_every_modulated_convolution() -> None:
    """By hand for an 8-px generator with widths 4 and 2: conv1 4->4 3x3 at 4x4, to_rgb1
    4->3 1x1 at 4x4, the upsampling conv 4->2 3x3 at 8x8, the conv 2->2 3x3 at 8x8 and
    to_rgbs.0 2->3 1x1 at 8x8."""
    g = Generator(8, style_dim=8, n_mlp=1, channels={4: 4, 8: 2})
    by_hand = (4 * 4 * 9 * 16) + (3 * 4 * 16) + (2 * 4 * 9 * 64) + (2 * 2 * 9 * 64) + (3 * 2 * 64)
    assert g.synthesis_macs() == by_hand == 9792
    # the 1024 x 1024 FFHQ generator (guidance.ladder_batch draws it one image at a time)
    assert 1.3e11 < Generator(1024, 512, 8, channel_multiplier=2).synthesis_macs() < 1.5e11
