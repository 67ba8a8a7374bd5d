"""Files in the layouts the upstream projects release, filled with random weights.

No model weights can be downloaded where this project is built and tested, so the loaders
of official checkpoints are proven on files of the real sizes saved exactly as upstream
saves them. The layouts here are written from the upstream code, as listings of key
names and shapes, not from this project's model classes: a test that wrote its "official"
file with the classes that read it could not catch a mismatch.

* rosinality/stylegan2-pytorch ``model.py`` (``Generator``) and ``convert_weight.py``:
  ``{"g_ema": state_dict, "latent_avg": [style_dim]}``.
* omertov/encoder4editing ``training/coach.py`` (``__get_save_dict``): ``{"state_dict":
  {"encoder.*", "decoder.*"}, "opts": vars(opts), "latent_avg": [n_latent, 512]}``; the
  options are ``options/train_options.py``'s defaults.
* mlfoundations/open_clip: a plain state dict of ``open_clip.create_model(name)`` (the
  ``open_clip_pytorch_model.bin`` of its pretrained tags).
* johnberg1/CLIPInverter ``adapter/training/coach_second_stage.py`` (``__get_save_dict``):
  ``{"state_dict": CLIPAdapterWithDecoder.state_dict(), "opts": vars(opts)}``, whose keys
  are ``adapter.*`` (``adapter/clipadapter.py``) and ``decoder.*`` (the generator of
  ``models/stylegan2/model_remapper.py`` with its ``affine_mlps`` and ``lambdas``); the
  options are ``adapter/options/train_options_stage_two.py``'s.

``wordbrush bench edit --pack ffhq`` and the full-size tests use these files
(``scripts/official_random_files.py`` writes them).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

__all__ = ["CLIPINVERTER_OPTS", "E4E_OPTS", "clipinverter_layout", "random_state",
           "rosinality_layout", "write_clipinverter", "write_e4e", "write_official_files",
           "write_open_clip", "write_rosinality"]

Layout = dict[str, tuple[int, ...]]


def rosinality_layout(size: int, style_dim: int = 512, n_mlp: int = 8,
                      channel_multiplier: int = 2) -> Layout:
    """Every key of rosinality's ``Generator(size, style_dim, n_mlp, channel_multiplier)``
    state dict with its shape (``model.py``: ``style`` = PixelNorm + ``n_mlp`` EqualLinear,
    ``ConstantInput``, ``StyledConv`` = ModulatedConv2d + NoiseInjection + FusedLeakyReLU,
    ``ToRGB``, the upsampling convs' ``Blur`` kernels and the ToRGB ``Upsample`` kernels,
    the ``noises`` buffers)."""
    channels = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256 * channel_multiplier,
                128: 128 * channel_multiplier, 256: 64 * channel_multiplier,
                512: 32 * channel_multiplier, 1024: 16 * channel_multiplier}
    log_size = int(math.log2(size))
    out: Layout = {}
    for i in range(1, n_mlp + 1):
        out[f"style.{i}.weight"] = (style_dim, style_dim)
        out[f"style.{i}.bias"] = (style_dim,)
    c4 = channels[4]
    out["input.input"] = (1, c4, 4, 4)

    def styled(name: str, cin: int, cout: int, upsample: bool) -> None:
        out[f"{name}.conv.weight"] = (1, cout, cin, 3, 3)
        if upsample:
            out[f"{name}.conv.blur.kernel"] = (4, 4)
        out[f"{name}.conv.modulation.weight"] = (cin, style_dim)
        out[f"{name}.conv.modulation.bias"] = (cin,)
        out[f"{name}.noise.weight"] = (1,)
        out[f"{name}.activate.bias"] = (cout,)

    def to_rgb(name: str, cin: int, upsample: bool) -> None:
        out[f"{name}.bias"] = (1, 3, 1, 1)
        if upsample:
            out[f"{name}.upsample.kernel"] = (4, 4)
        out[f"{name}.conv.weight"] = (1, 3, cin, 1, 1)
        out[f"{name}.conv.modulation.weight"] = (cin, style_dim)
        out[f"{name}.conv.modulation.bias"] = (cin,)

    styled("conv1", c4, c4, False)
    to_rgb("to_rgb1", c4, False)
    cin = c4
    for k, i in enumerate(range(3, log_size + 1)):
        cout = channels[2 ** i]
        styled(f"convs.{2 * k}", cin, cout, True)
        styled(f"convs.{2 * k + 1}", cout, cout, False)
        to_rgb(f"to_rgbs.{k}", cout, True)
        cin = cout
    for layer in range((log_size - 2) * 2 + 1):
        res = 2 ** ((layer + 5) // 2)
        out[f"noises.noise_{layer}"] = (1, 1, res, res)
    return out


def clipinverter_layout(stylegan_size: int,
                        levels: Iterable[str] = ("coarse", "medium", "fine")) -> Layout:
    """CLIPInverter's own keys in a released checkpoint: the adapter (``clipadapter.py``:
    ``CLIPAdapter`` with a ``SubTextMapper`` of 512, 256 and 128 channels per level, each
    one ``TextModulationModule`` of a bias-free 3x3 conv, GroupNorm(32) and the gamma and
    beta MLPs ``Linear(512,512), LayerNorm([512]), LeakyReLU, Linear(512,C)``) and the
    remapper (``model_remapper.py``: two ``affine_mlps`` and two ``lambdas`` per upsampling
    block, each MLP ``Linear, ReLU, Linear, LayerNorm, ReLU, Linear`` of 512).
    The generator's own ``decoder.*`` keys are :func:`rosinality_layout`'s."""
    widths = {"coarse": 512, "medium": 256, "fine": 128}
    out: Layout = {}
    for level in levels:
        c = widths[level]
        base = f"adapter.{level}_mapping.modulation_module_list.0"
        out[f"{base}.conv.weight"] = (c, c, 3, 3)
        out[f"{base}.norm.weight"] = (c,)
        out[f"{base}.norm.bias"] = (c,)
        for fn in ("gamma_function", "beta_function"):
            out[f"{base}.{fn}.0.weight"] = (512, 512)
            out[f"{base}.{fn}.0.bias"] = (512,)
            out[f"{base}.{fn}.1.weight"] = (512,)
            out[f"{base}.{fn}.1.bias"] = (512,)
            out[f"{base}.{fn}.3.weight"] = (c, 512)
            out[f"{base}.{fn}.3.bias"] = (c,)
    n_convs = 2 * (int(math.log2(stylegan_size)) - 2)
    for k in range(n_convs):
        for j, shape in ((0, (512, 512)), (2, (512, 512)), (3, None), (5, (512, 512))):
            out[f"decoder.affine_mlps.{k}.{j}.weight"] = shape or (512,)
            out[f"decoder.affine_mlps.{k}.{j}.bias"] = (512,)
    for k in range(n_convs):
        out[f"decoder.lambdas.{k}"] = ()
    return out


#: rosinality's blur and upsample kernel: make_kernel([1, 3, 3, 1]) * 2**2
_KERNEL = torch.outer(torch.tensor([1.0, 3, 3, 1]), torch.tensor([1.0, 3, 3, 1])) / 64 * 4


def random_state(layout: Layout, generator: torch.Generator) -> dict[str, Tensor]:
    """Random tensors of the layout's shapes: the fixed kernels as the code makes them,
    the remapper's lambdas at their initial 0.05, norms' weights near 1, the rest small
    Gaussian noise (``randn / sqrt(fan_in)``), so that a forward pass stays finite."""
    out: dict[str, Tensor] = {}
    for key, shape in layout.items():
        if key.endswith(".kernel"):
            out[key] = _KERNEL.clone()
        elif ".lambdas." in key:
            out[key] = torch.tensor(0.05)
        elif key.startswith("noises."):
            out[key] = torch.randn(shape, generator=generator)
        elif len(shape) == 1 and key.endswith(".weight"):  # LayerNorm / GroupNorm / noise
            out[key] = 1 + 0.1 * torch.randn(shape, generator=generator)
        else:
            fan_in = math.prod(shape[1:]) if len(shape) > 1 else 1
            out[key] = torch.randn(shape, generator=generator) / math.sqrt(max(fan_in, 1))
    return out


def _generator_state(size: int, seed: int) -> dict[str, Tensor]:
    state = random_state(rosinality_layout(size), torch.Generator().manual_seed(seed))
    # rosinality stores mapping weights divided by the learning-rate multiplier 0.01
    for key in state:
        if key.startswith("style.") and key.endswith(".weight"):
            state[key] = state[key] * math.sqrt(512) * 100
    return state


def _save(obj: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)
    return path


def n_latent(size: int) -> int:
    return 2 * int(math.log2(size)) - 2


def write_rosinality(path: Path, size: int = 1024, seed: int = 0) -> Path:
    """``stylegan2-ffhq-config-f.pt`` as ``convert_weight.py`` writes it."""
    g = torch.Generator().manual_seed(seed + 1)
    return _save({"g_ema": _generator_state(size, seed),
                  "latent_avg": 0.1 * torch.randn(512, generator=g)}, path)


#: ``vars(opts)`` of e4e's ``options/train_options.py`` at its defaults (as saved)
E4E_OPTS: dict[str, Any] = {
    "exp_dir": "experiment", "dataset_type": "ffhq_encode", "encoder_type": "Encoder4Editing",
    "batch_size": 4, "test_batch_size": 2, "workers": 4, "test_workers": 2,
    "learning_rate": 0.0001, "optim_name": "ranger", "train_decoder": False,
    "start_from_latent_avg": True, "lpips_type": "alex", "lpips_lambda": 0.8,
    "id_lambda": 0.1, "l2_lambda": 1.0,
    "stylegan_weights": "pretrained_models/stylegan2-ffhq-config-f.pt",
    "stylegan_size": 1024, "checkpoint_path": None, "max_steps": 500000,
    "image_interval": 100, "board_interval": 50, "val_interval": 1000, "save_interval": None,
    "w_discriminator_lambda": 0.1, "w_discriminator_lr": 2e-5, "r1": 10, "d_reg_every": 16,
    "use_w_pool": True, "w_pool_size": 50, "delta_norm": 2, "delta_norm_lambda": 2e-4,
    "progressive_steps": [0, 20000, 22000, 24000, 26000, 28000, 30000, 32000, 34000, 36000,
                          38000, 40000, 42000, 44000, 46000, 48000, 50000, 52000],
    "progressive_start": None, "progressive_step_every": 2000, "save_training_data": False,
    "sub_exp_dir": None, "keep_optimizer": False, "resume_training_from_ckpt": None,
    "update_param_list": None, "device": "cuda:0",
}


def write_e4e(path: Path, stylegan_size: int = 1024, seed: int = 0) -> Path:
    """``e4e_ffhq_encode.pt``: the encoder, its generator as ``decoder.*``, the options and
    the repeated ``latent_avg``. The encoder's 621 keys come from this project's
    :class:`~engine.models.e4e.Encoder4Editing`, whose layout ``tests/test_e4e.py`` checks
    against e4e's own key listing."""
    from engine.models.e4e import Encoder4Editing

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 2)
        encoder = Encoder4Editing(n_styles=n_latent(stylegan_size))
    state = {f"encoder.{k}": v for k, v in encoder.state_dict().items()}
    state.update({f"decoder.{k}": v for k, v in _generator_state(stylegan_size, seed).items()})
    g = torch.Generator().manual_seed(seed + 3)
    avg = (0.1 * torch.randn(512, generator=g)).repeat(n_latent(stylegan_size), 1)
    return _save({"state_dict": state, "opts": {**E4E_OPTS, "stylegan_size": stylegan_size},
                  "latent_avg": avg}, path)


def write_open_clip(path: Path, model: str = "ViT-B-32", seed: int = 0) -> Path:
    """open_clip's pretrained file for ``model``: a plain state dict."""
    import open_clip

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 4)
        net = open_clip.create_model(model, pretrained=None, load_weights=False)
    return _save({k: v.detach().clone() for k, v in net.state_dict().items()}, path)


#: ``vars(opts)`` of CLIPInverter's ``adapter/options/train_options_stage_two.py`` (as the
#: coach saves it, with the ``device`` it sets)
CLIPINVERTER_OPTS: dict[str, Any] = {
    "exp_dir": "experiment", "no_coarse_mapper": False, "no_medium_mapper": False,
    "no_fine_mapper": False, "use_moco": False, "is_training_from_stage_one": True,
    "dataset_type": "celeba_encode", "start_from_latent_avg": False, "batch_size": 1,
    "test_batch_size": 1, "workers": 4, "test_workers": 2, "learning_rate": 0.0005,
    "optim_name": "ranger", "lpips_lambda": 0.6, "l2_lambda": 1.0, "w_norm_lambda": 0.005,
    "id_lambda": 0.1, "clip_lambda": 1.0, "cycle_lambda": 1.0,
    "stylegan_weights": "pretrained_models/stylegan2-ffhq-config-f.pt", "stylegan_size": 1024,
    "ir_se50_weights": "pretrained_models/model_ir_se50.pth",
    "checkpoint_path": "experiment/checkpoints/best_model.pt",
    "pretrained_e4e_path": "pretrained_models/e4e_ffhq_encode.pt", "max_steps": 500000,
    "image_interval": 100, "board_interval": 50, "val_interval": 2000, "save_interval": 2000,
    "device": "cuda:0",
}


def write_clipinverter(path: Path, stylegan_size: int = 1024, seed: int = 0,
                       levels: Iterable[str] = ("coarse", "medium", "fine")) -> Path:
    """``pretrained_faces.pt`` as released: adapter, generator and remapper, and options."""
    levels = tuple(levels)
    g = torch.Generator().manual_seed(seed + 5)
    state = random_state(clipinverter_layout(stylegan_size, levels), g)
    state.update({f"decoder.{k}": v for k, v in _generator_state(stylegan_size, seed).items()})
    opts = {**CLIPINVERTER_OPTS, "stylegan_size": stylegan_size,
            **{f"no_{name}_mapper": name not in levels for name in ("coarse", "medium", "fine")}}
    return _save({"state_dict": state, "opts": opts}, path)


def write_official_files(folder: Path, size: int = 1024, seed: int = 0,
                         clip_model: str = "ViT-B-32",
                         progress: Callable[[str], None] | None = None) -> dict[str, Path]:
    """The four files a user of the FFHQ methods has, with random weights: the rosinality
    generator, the e4e encoder (with its generator), open_clip's ``clip_model`` and
    CLIPInverter's faces checkpoint, for a ``size`` generator; ``progress(name)`` after
    each file."""
    folder = Path(folder)
    steps: list[tuple[str, Callable[[], Path]]] = [
        ("generator", lambda: write_rosinality(folder / f"stylegan2-{size}.pt", size, seed)),
        ("encoder", lambda: write_e4e(folder / f"e4e_{size}_encode.pt", size, seed)),
        ("clip", lambda: write_open_clip(folder / f"open_clip_{clip_model}.bin", clip_model,
                                         seed)),
        ("clipinverter", lambda: write_clipinverter(folder / f"clipinverter_{size}.pt", size,
                                                    seed)),
    ]
    out = {}
    for name, write in steps:
        out[name] = write()
        if progress is not None:
            progress(name)
    return out
