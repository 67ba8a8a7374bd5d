"""CLIPInverter's two networks in the layout of its released checkpoints
(github johnberg1/CLIPInverter: ``adapter/clipadapter.py``, ``models/stylegan2/
model_remapper.py``, ``adapter/adapter_decoder.py``).

* :class:`CLIPAdapter` (checkpoint prefix ``adapter.``): per e4e feature level (c3 coarse,
  c2 medium, c1 fine) PixelNorm -> 3x3 conv -> GroupNorm -> ``x * (1 + exp(gamma(t))) +
  beta(t)`` -> LeakyReLU, where gamma and beta are ``Linear-LayerNorm-LeakyReLU-Linear``
  MLPs on the CLIP text (or image) embedding ``t``. A level the training options switched
  off (``no_coarse_mapper``, ``no_medium_mapper``, ``no_fine_mapper``) has no weights and
  passes its features through, as in the official code.
* :class:`CLIPRemapper` (checkpoint prefix ``decoder.``, next to the generator's keys):
  one MLP (``Linear-ReLU-Linear-LayerNorm-ReLU-Linear``) and one learnable ``lambda`` per
  upsampling-block conv; the w that conv reads becomes ``w (1 - 0.9 lambda) + 0.9 lambda
  mlp(t)``. ToRGB layers and the first 4x4 conv keep their w, as in the official code.

Inference (the official ``infer.py``): ``w, feats = e4e(x)``; ``w_hat = w + 0.1 *
map2style(adapter(feats, t))``; render ``w_hat`` through the remapper.

Checkpoints are what the official coaches save, ``{"state_dict": net.state_dict(), "opts":
vars(opts)}`` of a ``CLIPAdapterWithDecoder``: ``adapter.*`` (45 keys), and ``decoder.*``,
the whole generator (171 keys at 1024) with the remapper's ``decoder.affine_mlps.*`` and
``decoder.lambdas.*``. The generator is not used (the pack's renders) and not kept. Files
this project trains are written in the same layout, with their architecture and residual
gain added to ``opts`` under ``wordbrush_*`` keys.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .layout import layout_differences, summarise_differences

__all__ = ["ADAPTER_LEVELS", "ADAPTER_PREFIX", "EMBEDDING_KEY", "GAIN_KEY", "REMAPPER_PREFIXES",
           "CLIPAdapter",
           "CLIPInverterNets", "CLIPRemapper", "adapter_residual", "level_channels",
           "load_clipinverter", "remapped_styles", "save_clipinverter"]

OFFICIAL_LEVEL_CHANNELS = (128, 256, 512)  # c1, c2, c3 of the official e4e at 256 px

#: where a CLIPInverter checkpoint keeps each network: the official ``CLIPAdapterWithDecoder``
#: names them ``adapter`` and ``decoder`` (the remapper lives in the decoder)
ADAPTER_PREFIX = "adapter."
REMAPPER_PREFIXES = ("decoder.affine_mlps.", "decoder.lambdas.")
#: the adapter's prefix in this project's files before they followed the
#: released layout, refused with a sentence saying so
OLD_ADAPTER_PREFIX = "mapper."


class _PixelNorm(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + 1e-8)


def _mlp(embed_dim: int, hidden: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(embed_dim, hidden), nn.LayerNorm([hidden]), nn.LeakyReLU(),
                         nn.Linear(hidden, out))


class TextModulationModule(nn.Module):
    def __init__(self, channels: int, embed_dim: int, hidden: int, groups: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=1, padding=1, bias=False)
        self.norm = nn.GroupNorm(groups, channels)
        self.gamma_function = _mlp(embed_dim, hidden, channels)
        self.beta_function = _mlp(embed_dim, hidden, channels)
        self.leakyrelu = nn.LeakyReLU()

    def forward(self, x: Tensor, embedding: Tensor) -> Tensor:
        x = self.norm(self.conv(x))
        gamma = self.gamma_function(embedding.float()).exp()[:, :, None, None]
        beta = self.beta_function(embedding.float())[:, :, None, None]
        return self.leakyrelu(x * (1 + gamma) + beta)


class SubTextMapper(nn.Module):
    def __init__(self, channels: int, embed_dim: int, hidden: int, groups: int) -> None:
        super().__init__()
        self.pixelnorm = _PixelNorm()
        self.modulation_module_list = nn.ModuleList(
            [TextModulationModule(channels, embed_dim, hidden, groups)])

    def forward(self, x: Tensor, embedding: Tensor) -> Tensor:
        x = self.pixelnorm(x)
        for module in self.modulation_module_list:
            x = module(x, embedding)
        return x


def _groups(channels: int, wanted: int = 32) -> int:
    return math.gcd(channels, wanted)


#: the adapter's levels, the e4e feature each modulates (0: c1, 1: c2, 2: c3), and the
#: official training option that leaves it out
ADAPTER_LEVELS = (("coarse", 2, "no_coarse_mapper"), ("medium", 1, "no_medium_mapper"),
                  ("fine", 0, "no_fine_mapper"))


class CLIPAdapter(nn.Module):
    """Official defaults: channels (c1, c2, c3) = (128, 256, 512), embed 512, hidden 512,
    GroupNorm(32), every level. Small packs pass their own (groups become gcd(channels,
    32)); ``levels`` names the levels that have a mapper (the others pass through)."""

    def __init__(self, channels: Sequence[int] = OFFICIAL_LEVEL_CHANNELS, embed_dim: int = 512,
                 hidden: int | None = None,
                 levels: Sequence[str] = ("coarse", "medium", "fine")) -> None:
        super().__init__()
        widths = [int(c) for c in channels]
        hidden = hidden or embed_dim
        unknown = set(levels) - {name for name, _, _ in ADAPTER_LEVELS}
        if unknown:
            raise ValueError(f"unknown adapter levels {sorted(unknown)}")
        self.levels = tuple(name for name, _, _ in ADAPTER_LEVELS if name in levels)
        for name, tap, _ in ADAPTER_LEVELS:
            if name in self.levels:
                c = widths[tap]
                self.add_module(f"{name}_mapping", SubTextMapper(c, embed_dim, hidden, _groups(c)))
        self.config = {"channels": widths, "embed_dim": embed_dim, "hidden": hidden,
                       "levels": list(self.levels)}

    def forward(self, features: tuple[Tensor, Tensor, Tensor], embedding: Tensor
                ) -> tuple[Tensor, Tensor, Tensor]:
        out = list(features)
        t = embedding.detach()
        for name, tap, _ in ADAPTER_LEVELS:
            if name in self.levels:
                out[tap] = self.get_submodule(f"{name}_mapping")(out[tap], t)
        return out[0], out[1], out[2]


class CLIPRemapper(nn.Module):
    """``n_convs`` = 2 * (log2(size) - 2): the convs of the upsampling blocks."""

    def __init__(self, n_convs: int, style_dim: int = 512, embed_dim: int = 512) -> None:
        super().__init__()
        self.affine_mlps = nn.ModuleList(
            nn.Sequential(nn.Linear(embed_dim, embed_dim), nn.ReLU(),
                          nn.Linear(embed_dim, style_dim), nn.LayerNorm(style_dim), nn.ReLU(),
                          nn.Linear(style_dim, style_dim))
            for _ in range(n_convs))
        self.lambdas = nn.ParameterList(nn.Parameter(torch.tensor(0.05))
                                        for _ in range(n_convs))
        self.config = {"n_convs": n_convs, "style_dim": style_dim, "embed_dim": embed_dim}

    def blend(self, k: int, w: Tensor, embedding: Tensor) -> Tensor:
        """The w read by upsampling-block conv ``k`` (0-based, ``convs.k``)."""
        lam = self.lambdas[k] * 0.9
        return w * (1 - lam) + self.affine_mlps[k](embedding.float()) * lam


def remapped_styles(generator: nn.Module, w_plus: Tensor, remapper: CLIPRemapper | None,
                    embedding: Tensor | None, strength: float = 1.0) -> list[Tensor]:
    """The generator's style-space vectors for ``w_plus`` with the remapper applied to the
    upsampling-block convs (``strength`` scales the blend; 0 = none)."""
    styles = []
    for lay in generator.style_layers:
        w = w_plus[:, lay.w_index]
        if remapper is not None and embedding is not None and lay.name.startswith("convs."):
            k = int(lay.name.split(".")[1])
            w = w + strength * (remapper.blend(k, w, embedding) - w)
        styles.append(generator.get_submodule(lay.name).conv.modulation(w))
    return styles


def save_clipinverter(adapter: CLIPAdapter, remapper: CLIPRemapper, path: str | Path,
                      opts: Mapping[str, Any] | None = None, half: bool = False) -> None:
    def cast(t: Tensor) -> Tensor:
        t = t.detach().cpu()
        return t.half() if half and t.is_floating_point() and t.dim() > 0 else t.clone()

    sd = {f"{ADAPTER_PREFIX}{k}": cast(v) for k, v in adapter.state_dict().items()}
    sd.update({f"decoder.{k}": cast(v) for k, v in remapper.state_dict().items()})
    out_opts = dict(opts or {})
    for name, _, option in ADAPTER_LEVELS:  # as the official options say it
        out_opts[option] = name not in adapter.levels
    out_opts["wordbrush_adapter"] = adapter.config
    out_opts["wordbrush_remapper"] = remapper.config
    out_opts.setdefault(EMBEDDING_KEY, "unit")
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"state_dict": sd, "opts": out_opts}, tmp)
    tmp.replace(path)


def _sub(sd: Mapping[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}


#: ``opts`` key of the residual gain a wordbrush training run calibrated (absent: 1.0)
GAIN_KEY = "wordbrush_residual_gain"
#: ``opts`` key of the embedding the networks read ("unit" or "raw"); absent: "raw" for the
#: released files, "unit" for this project's (they carry ``wordbrush_adapter``)
EMBEDDING_KEY = "wordbrush_embedding"


@dataclass
class CLIPInverterNets:
    """Both trained networks and the residual gain their file records.

    ``residual_gain`` scales the residual and the remapper blend at strength 1. Training
    calibrates it against the world's ground-truth edits on validation frames
    (:func:`engine.training.clipinverter.calibrate_gain`); official files lack it: 1.0.
    """

    adapter: CLIPAdapter
    remapper: CLIPRemapper
    residual_gain: float = 1.0
    #: the CLIP embedding the networks were trained on: "raw" (the model's output, as the
    #: official code feeds ``clip_model.encode_text``) or "unit" (L2-normalised, as this
    #: project's training does)
    embedding: str = "raw"


def load_clipinverter(src: str | Path | Mapping[str, Any], generator: nn.Module,
                      embed_dim: int, level_channels: Sequence[int], device: Any = "cpu"
                      ) -> CLIPInverterNets:
    """Read a CLIPInverter checkpoint (a path, read weights-only, or its loaded dict) and
    load both networks strictly.

    ``generator``, ``embed_dim`` and ``level_channels`` (the encoder's c1, c2, c3 widths)
    describe what the networks must fit; a checkpoint for another domain is refused with
    the differing keys named.
    """
    path = Path(src) if isinstance(src, (str, Path)) else Path("clipinverter checkpoint")
    ckpt = (torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(src, (str, Path)) else src)
    if not isinstance(ckpt, dict):
        raise ValueError(f"{path}: not a CLIPInverter checkpoint")
    sd = ckpt.get("state_dict", ckpt)
    opts = ckpt.get("opts") or {}
    if not isinstance(sd, Mapping) or not isinstance(opts, Mapping):
        raise ValueError(f"{path.name}: not a CLIPInverter checkpoint (state_dict and opts "
                         "must be dictionaries)")
    if not any(k.startswith(ADAPTER_PREFIX) for k in sd) and any(
            k.startswith(OLD_ADAPTER_PREFIX) for k in sd):
        raise ValueError(f"{path.name} keeps its adapter under 'mapper.', a layout this "
                         "project wrote before it followed CLIPInverter's released files "
                         "('adapter.'): train it again with `wordbrush train clipinverter`")
    levels = [name for name, _, option in ADAPTER_LEVELS if not opts.get(option, False)]
    a_cfg = opts.get("wordbrush_adapter") or {"channels": list(level_channels),
                                              "embed_dim": embed_dim}
    adapter = CLIPAdapter(a_cfg["channels"], a_cfg["embed_dim"], a_cfg.get("hidden"),
                          levels=levels)
    n_convs = 2 * (int(math.log2(generator.size)) - 2)
    remapper = CLIPRemapper(n_convs, generator.style_dim, embed_dim)
    parts = (("adapter", adapter, ADAPTER_PREFIX, ("",)),
             ("remapper", remapper, "decoder.", ("affine_mlps.", "lambdas.")))
    for name, module, prefix, kept in parts:
        # the decoder also holds the whole generator in official files: not the remapper's
        have = {k: v for k, v in _sub(sd, prefix).items() if k.startswith(kept)}
        missing, unexpected, shapes = layout_differences(module.state_dict(), have)
        if missing or unexpected or shapes:
            detail = "; ".join(summarise_differences(missing, unexpected, shapes))
            raise ValueError(f"{path.name}: the {name} does not fit this pack ({detail})")
        module.load_state_dict({k: v.float() for k, v in have.items()}, strict=True)
    gain = opts.get(GAIN_KEY, 1.0)
    if isinstance(gain, bool) or not isinstance(gain, (int, float)) or not 0 < gain < 10:
        raise ValueError(f"{Path(path).name}: {GAIN_KEY} must be a number in (0, 10), "
                         f"not {gain!r}")
    embedding = opts.get(EMBEDDING_KEY, "unit" if "wordbrush_adapter" in opts else "raw")
    if embedding not in ("raw", "unit"):
        raise ValueError(f"{path.name}: {EMBEDDING_KEY} must be 'raw' or 'unit', not "
                         f"{embedding!r}")
    adapter.eval().requires_grad_(False).to(device)
    remapper.eval().requires_grad_(False).to(device)
    return CLIPInverterNets(adapter, remapper, float(gain), embedding)


def level_channels(encoder: nn.Module) -> tuple[int, int, int]:
    """(c1, c2, c3) widths of an e4e encoder's feature taps."""
    with torch.no_grad():
        size = encoder.config.input_size
        c1, c2, c3 = encoder.features(torch.zeros(1, encoder.config.input_nc, size, size,
                                                  device=next(encoder.parameters()).device))
    return c1.shape[1], c2.shape[1], c3.shape[1]


def adapter_residual(encoder: nn.Module, adapter: CLIPAdapter, image: Tensor,
                     embedding: Tensor) -> tuple[Tensor, Tensor]:
    """``(w, delta)``: the inversion (with latent_avg) and CLIPInverter's residual
    ``0.1 * map2style(adapter(features, t))``."""
    c1, c2, c3 = encoder.features(image)
    w = encoder.map2style(c1, c2, c3) + encoder.latent_avg
    delta = 0.1 * encoder.map2style(*adapter((c1, c2, c3), embedding))
    return w, delta

