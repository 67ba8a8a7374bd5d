"""e4e (encoder4editing) encoder: image -> StyleGAN2 W+ latent.

Module and parameter names follow the official ``Encoder4Editing`` exactly, so the
``encoder.*`` keys of the official ``e4e_ffhq_encode.pt`` load with ``strict=True``
(621 keys: 52 BatchNorms contribute 156 buffers, 52 of them ``num_batches_tracked``).

Architecture (official config, 256x256 input):

* ``input_layer``: Conv3x3(3->64, no bias), BN, PReLU.
* ``body``: 24 IR-SE bottleneck units in 4 stages of (3, 4, 14, 3) units with widths
  (64, 128, 256, 512); the first unit of each stage has stride 2.  Feature taps:
  ``c1`` after unit 6 (end of stage 2, 128 ch, 64x64), ``c2`` after unit 20 (end of
  stage 3, 256 ch, 32x32), ``c3`` after unit 23 (end of stage 4, 512 ch, 16x16).
* FPN: ``p2 = up(c3) + latlayer1(c2)`` (32x32), ``p1 = up(p2) + latlayer2(c1)`` (64x64),
  bilinear upsampling with ``align_corners=True``.
* ``styles[i]``: GradualStyleBlock = log2(spatial) stride-2 Conv3x3 + LeakyReLU(0.01)
  down to 1x1, then an EqualLinear.  Coarse styles read ``c3``, medium ones ``p2``,
  fine ones ``p1``.
* ``w = styles[0](c3)`` broadcast to all ``n_styles`` rows, plus ``styles[i](...)`` as a
  delta on row ``i >= 1``.  ``latent_avg`` is *not* added here; the caller adds it.

Input normalisation: RGB in [0, 1] resized to ``input_size`` and mapped to [-1, 1]
(mean = std = 0.5), see :func:`preprocess`.

Small configs (the demo pack) keep the same module names; only widths, depths, input size
and the number / width of styles change, so :func:`load_e4e` / :func:`save_e4e` work for
both.  The checkpoint layout is the official one::

    {"state_dict": {"encoder.*": ..., "decoder.*": ...}, "opts": dict, "latent_avg": [n, dim]}

Style groups for fewer styles: e4e's groups are defined by generator resolution.  W+ row
``i`` of a rosinality StyleGAN2 drives resolution ``4 * 2**((i + 1) // 2)`` (row 0: 4 px,
rows 1-2: 8 px, rows 3-4: 16 px, ...).  Coarse = rows 0-2 (4-8 px), medium = rows 3-6
(16-32 px), fine = rows 7+ (64 px and up).  We keep that resolution-based split for any
``n_styles`` instead of a proportional one, so each group keeps reading the FPN level the
official model pairs with those generator layers.  For a 64-px generator
(``n_styles = 10``): coarse 0-2 from ``c3``, medium 3-6 from ``p2``, fine 7-9 from ``p1``.
Generators of 16 px or less (``n_styles <= 6``) have no fine rows; ``latlayer2`` is then
kept (for the key layout) but unused.  ``E4EConfig.coarse_ind`` / ``middle_ind`` override
the split.
"""

from __future__ import annotations

import argparse
import math
import pickle
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal, overload

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layout import layout_differences, summarise_differences

__all__ = [
    "E4EConfig",
    "Encoder4Editing",
    "decoder_state_dict",
    "load_e4e",
    "preprocess",
    "save_e4e",
]

#: Units per stage of the IR-SE backbones, as in the official ``get_blocks``.
DEPTHS_BY_NUM_LAYERS: dict[int, tuple[int, int, int, int]] = {
    50: (3, 4, 14, 3),
    100: (3, 13, 30, 3),
    152: (3, 8, 36, 3),
}

#: Key under which :func:`save_e4e` records the encoder config inside ``opts``.
CONFIG_OPTS_KEY = "wordbrush_e4e_config"


@dataclass(frozen=True)
class E4EConfig:
    """Architecture of an :class:`Encoder4Editing`.  The defaults are the official e4e."""

    depth_units: tuple[int, int, int, int] = DEPTHS_BY_NUM_LAYERS[50]
    widths: tuple[int, int, int, int] = (64, 128, 256, 512)
    stem_width: int = 64
    mode: str = "ir_se"  # "ir" drops the squeeze-excitation modules
    se_reduction: int = 16
    input_nc: int = 3
    input_size: int = 256
    n_styles: int = 18
    style_dim: int = 512
    #: Channels of the convs inside each GradualStyleBlock (official: ``style_dim``).
    style_width: int | None = None
    #: First medium / first fine style row; ``None`` -> 3 / 7 (resolution-based split).
    coarse_ind: int | None = None
    middle_ind: int | None = None

    @classmethod
    def official(
        cls, num_layers: int = 50, mode: str = "ir_se", stylegan_size: int = 1024
    ) -> E4EConfig:
        """The official e4e encoder for a ``stylegan_size`` generator (18 styles at 1024)."""
        if num_layers not in DEPTHS_BY_NUM_LAYERS:
            raise ValueError(f"num_layers must be one of {sorted(DEPTHS_BY_NUM_LAYERS)}")
        return cls(
            depth_units=DEPTHS_BY_NUM_LAYERS[num_layers],
            mode=mode,
            n_styles=n_styles_for_size(stylegan_size),
        )

    @classmethod
    def small(
        cls,
        *,
        input_size: int = 64,
        n_styles: int = 10,
        style_dim: int = 128,
        widths: tuple[int, int, int, int] = (32, 48, 96, 128),
        depth_units: tuple[int, int, int, int] = (1, 2, 2, 1),
        stem_width: int = 32,
        style_width: int | None = 64,
        mode: str = "ir_se",
    ) -> E4EConfig:
        """A demo-pack sized encoder (about 2.2 M parameters with the defaults).

        Parameter count scales roughly with ``n_styles * style_width**2`` (style heads) and
        ``sum(depth_units * widths**2)`` (backbone); shrink those to go towards 1 M.
        """
        return cls(
            depth_units=depth_units,
            widths=widths,
            stem_width=stem_width,
            mode=mode,
            input_size=input_size,
            n_styles=n_styles,
            style_dim=style_dim,
            style_width=style_width,
        )

    # -- derived ---------------------------------------------------------------------------
    @property
    def style_channels(self) -> int:
        return self.style_width if self.style_width is not None else self.style_dim

    @property
    def split(self) -> tuple[int, int]:
        """``(coarse_ind, middle_ind)``: rows ``[0, c)`` coarse, ``[c, m)`` medium, rest fine."""
        c = 3 if self.coarse_ind is None else self.coarse_ind
        m = 7 if self.middle_ind is None else self.middle_ind
        c = min(c, self.n_styles)
        m = min(max(m, c), self.n_styles)
        return c, m

    @property
    def tap_indices(self) -> tuple[int, int, int]:
        """Body unit indices after which c1, c2, c3 are taken (official: 6, 20, 23)."""
        ends = [sum(self.depth_units[: k + 1]) - 1 for k in range(4)]
        return ends[1], ends[2], ends[3]

    def style_spatial(self, index: int) -> int:
        """Side of the feature map that style row ``index`` reads."""
        c, m = self.split
        div = 16 if index < c else 8 if index < m else 4
        return self.input_size // div

    def validate(self) -> None:
        if len(self.depth_units) != 4 or len(self.widths) != 4:
            raise ValueError("depth_units and widths need exactly 4 stages (taps c1, c2, c3)")
        if min(self.depth_units) < 1:
            raise ValueError(f"every stage needs at least one unit, got {self.depth_units}")
        if self.mode not in ("ir", "ir_se"):
            raise ValueError(f"mode must be 'ir' or 'ir_se', got {self.mode!r}")
        if self.n_styles < 1:
            raise ValueError("n_styles must be >= 1")
        side = self.input_size // 16
        if self.input_size % 16 or side < 1 or side & (side - 1):
            raise ValueError(
                f"input_size must be 16 * 2**k (style heads pool to 1x1), got {self.input_size}"
            )
        if self.mode == "ir_se" and min(self.widths) < self.se_reduction:
            raise ValueError(f"widths must be >= se_reduction ({self.se_reduction}) in ir_se mode")

    def to_dict(self) -> dict[str, Any]:
        """Plain (``weights_only``-safe) dict, stored in checkpoint opts by :func:`save_e4e`."""
        d = asdict(self)
        d["depth_units"] = list(self.depth_units)
        d["widths"] = list(self.widths)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> E4EConfig:
        known = {f for f in cls.__dataclass_fields__}
        kw = {k: v for k, v in d.items() if k in known}
        for k in ("depth_units", "widths"):
            if k in kw:
                kw[k] = tuple(int(v) for v in kw[k])
        return cls(**kw)


def n_styles_for_size(stylegan_size: int) -> int:
    """Number of W+ rows of a rosinality StyleGAN2 of that output size (1024 -> 18)."""
    log = int(math.log2(stylegan_size))
    if 2**log != stylegan_size or log < 2:
        raise ValueError(f"stylegan_size must be a power of two >= 4, got {stylegan_size}")
    return 2 * log - 2


# ------------------------------------------------------------------------------------------
# Building blocks (names match the official helpers: a strict load depends on it)
# ------------------------------------------------------------------------------------------
class SEModule(nn.Module):
    """Squeeze-excitation: global pool -> 1x1 conv -> ReLU -> 1x1 conv -> sigmoid gate."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1, bias=False)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        gate = self.sigmoid(self.fc2(self.relu(self.fc1(self.avg_pool(x)))))
        return x * gate


class BottleneckIR(nn.Module):
    """IR (ArcFace) bottleneck: ``res_layer(x) + shortcut_layer(x)``; optional SE."""

    def __init__(self, in_ch: int, depth: int, stride: int, se_reduction: int | None) -> None:
        super().__init__()
        if in_ch == depth:
            # A 1x1 max-pool is plain subsampling; it carries no weights.
            self.shortcut_layer: nn.Module = nn.MaxPool2d(1, stride)
        else:
            self.shortcut_layer = nn.Sequential(
                nn.Conv2d(in_ch, depth, 1, stride, bias=False), nn.BatchNorm2d(depth)
            )
        layers: list[nn.Module] = [
            nn.BatchNorm2d(in_ch),
            nn.Conv2d(in_ch, depth, 3, 1, 1, bias=False),
            nn.PReLU(depth),
            nn.Conv2d(depth, depth, 3, stride, 1, bias=False),
            nn.BatchNorm2d(depth),
        ]
        if se_reduction is not None:
            layers.append(SEModule(depth, se_reduction))
        self.res_layer = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.res_layer(x) + self.shortcut_layer(x)


class EqualLinear(nn.Module):
    """StyleGAN2's equalised-lr linear layer (``lr_mul = 1``, no activation), as in e4e."""

    def __init__(self, in_dim: int, out_dim: int, lr_mul: float = 1.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_mul)
        self.bias = nn.Parameter(torch.zeros(out_dim))
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)


class GradualStyleBlock(nn.Module):
    """Stride-2 convs (LeakyReLU 0.01, torch's default, as in e4e) down to 1x1, then linear."""

    def __init__(self, in_ch: int, width: int, out_dim: int, spatial: int) -> None:
        super().__init__()
        n_convs = int(math.log2(spatial))
        mods: list[nn.Module] = []
        for k in range(n_convs):
            mods += [nn.Conv2d(in_ch if k == 0 else width, width, 3, 2, 1), nn.LeakyReLU(0.01)]
        self.convs = nn.Sequential(*mods)
        self.linear = EqualLinear(width, out_dim)
        self.width = width
        self.spatial = spatial

    def forward(self, x: Tensor) -> Tensor:
        x = self.convs(x)
        if x.shape[-2:] != (1, 1):
            raise ValueError(
                f"style head expected a {self.spatial}px feature map, got "
                f"{tuple(x.shape[-2:])} after pooling: is the input the encoder's input_size?"
            )
        return self.linear(x.flatten(1))


def _upsample_add(x: Tensor, y: Tensor) -> Tensor:
    return F.interpolate(x, size=y.shape[-2:], mode="bilinear", align_corners=True) + y


# ------------------------------------------------------------------------------------------
# Encoder
# ------------------------------------------------------------------------------------------
class Encoder4Editing(nn.Module):
    """e4e encoder.  ``forward(x) = map2style(*features(x))`` -> ``[B, n_styles, style_dim]``.

    ``x`` is ``[B, input_nc, S, S]`` in [-1, 1], resized to ``input_size`` where ``S`` differs
    (:meth:`fit`; :func:`preprocess` maps [0, 1] images). The output excludes
    ``latent_avg``; add it before decoding.

    Args:
        config: architecture; defaults to :meth:`E4EConfig.official`.
        **overrides: ``E4EConfig`` fields to replace, plus ``num_layers`` (50/100/152) as a
            shorthand for ``depth_units``.
    """

    def __init__(self, config: E4EConfig | None = None, **overrides: Any) -> None:
        super().__init__()
        cfg = config or E4EConfig()
        if "num_layers" in overrides:
            n = overrides.pop("num_layers")
            if n not in DEPTHS_BY_NUM_LAYERS:
                raise ValueError(f"num_layers must be one of {sorted(DEPTHS_BY_NUM_LAYERS)}")
            overrides["depth_units"] = DEPTHS_BY_NUM_LAYERS[n]
        if overrides:
            cfg = replace(cfg, **overrides)
        cfg.validate()
        self.config = cfg
        se = cfg.se_reduction if cfg.mode == "ir_se" else None

        self.input_layer = nn.Sequential(
            nn.Conv2d(cfg.input_nc, cfg.stem_width, 3, 1, 1, bias=False),
            nn.BatchNorm2d(cfg.stem_width),
            nn.PReLU(cfg.stem_width),
        )
        units: list[nn.Module] = []
        in_ch = cfg.stem_width
        for n_units, width in zip(cfg.depth_units, cfg.widths, strict=True):
            for k in range(n_units):
                units.append(BottleneckIR(in_ch, width, 2 if k == 0 else 1, se))
                in_ch = width
        self.body = nn.Sequential(*units)

        top = cfg.widths[3]  # c3 channels; the FPN levels share them
        self.styles = nn.ModuleList(
            GradualStyleBlock(top, cfg.style_channels, cfg.style_dim, cfg.style_spatial(i))
            for i in range(cfg.n_styles)
        )
        self.latlayer1 = nn.Conv2d(cfg.widths[2], top, 1)
        self.latlayer2 = nn.Conv2d(cfg.widths[1], top, 1)
        #: e4e's progressive training stage: deltas for rows 1..stage are used.
        #: ``None`` (inference) uses all of them.
        self.progressive_stage: int | None = None

    @property
    def n_styles(self) -> int:
        return self.config.n_styles

    @property
    def style_dim(self) -> int:
        return self.config.style_dim

    def fit(self, x: Tensor) -> Tensor:
        """``x`` (square, in [-1, 1]) at this encoder's input size: antialiased bilinear,
        differentiable; unchanged where it already is. A pack's frame is made at its
        generator's size, which is often not the encoder's (FFHQ: 1024 against 256), so
        every entry point takes any square size, as CLIP's preprocessing does."""
        cfg = self.config
        if x.dim() != 4 or x.shape[1] != cfg.input_nc or x.shape[-2] != x.shape[-1]:
            raise ValueError(f"expected square images [B, {cfg.input_nc}, S, S], "
                             f"got {tuple(x.shape)}")
        if x.shape[-1] == cfg.input_size:
            return x
        return F.interpolate(x, size=(cfg.input_size, cfg.input_size), mode="bilinear",
                             align_corners=False, antialias=x.shape[-1] > cfg.input_size)

    def features(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Backbone taps ``(c1, c2, c3)`` (official: 128x64², 256x32², 512x16² at 256 px) of
        square images of any size (:meth:`fit` brings them to the input size)."""
        cfg = self.config
        x = self.fit(x)
        i1, i2, i3 = cfg.tap_indices
        x = self.input_layer(x)
        taps: list[Tensor] = []
        for i, unit in enumerate(self.body):
            x = unit(x)
            if i in (i1, i2, i3):
                taps.append(x)
        return taps[0], taps[1], taps[2]

    def map2style(self, c1: Tensor, c2: Tensor, c3: Tensor) -> Tensor:
        """FPN + style heads: ``w[:, 0] = styles[0](c3)`` everywhere, plus deltas on rows >= 1.

        Exposed separately so a feature adapter (CLIPInverter) can sit between
        :meth:`features` and this.  Does not add ``latent_avg``.
        """
        n = self.config.n_styles
        coarse, middle = self.config.split
        last = n - 1 if self.progressive_stage is None else min(self.progressive_stage, n - 1)
        w0 = self.styles[0](c3)
        rows = [w0] * n
        p2 = p1 = None
        for i in range(1, last + 1):
            if i < coarse:
                feat = c3
            elif i < middle:
                if p2 is None:
                    p2 = _upsample_add(c3, self.latlayer1(c2))
                feat = p2
            else:
                if p2 is None:
                    p2 = _upsample_add(c3, self.latlayer1(c2))
                if p1 is None:
                    p1 = _upsample_add(p2, self.latlayer2(c1))
                feat = p1
            rows[i] = w0 + self.styles[i](feat)
        return torch.stack(rows, dim=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.map2style(*self.features(x))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def preprocess(image01: Tensor, size: int = 256) -> Tensor:
    """[B, C, H, W] RGB in [0, 1] -> ``size``² in [-1, 1] (e4e's mean/std 0.5 normalisation).

    Differentiable; uses antialiased bilinear resizing when the size differs.
    """
    if image01.dim() == 3:
        image01 = image01.unsqueeze(0)
    if image01.shape[-2:] != (size, size):
        image01 = F.interpolate(
            image01, size=(size, size), mode="bilinear", align_corners=False, antialias=True
        )
    return image01 * 2.0 - 1.0


# ------------------------------------------------------------------------------------------
# Checkpoints
# ------------------------------------------------------------------------------------------
def _describe(src: str | Path | Mapping[str, Any]) -> str:
    return str(src) if isinstance(src, (str, Path)) else "<in-memory checkpoint>"


def _read_checkpoint(src: str | Path | Mapping[str, Any], map_location: Any) -> dict[str, Any]:
    if isinstance(src, Mapping):
        return dict(src)
    path = Path(src)
    if not path.is_file():
        raise FileNotFoundError(f"e4e checkpoint not found: {path}")
    try:
        try:
            ckpt = torch.load(path, map_location=map_location, weights_only=True, mmap=True)
        except RuntimeError as exc:  # legacy (non-zip) files cannot be memory-mapped
            if "mmap" not in str(exc).lower() and "zip" not in str(exc).lower():
                raise
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ValueError(
            f"refusing to load e4e checkpoint {path}: it pickles arbitrary Python objects, "
            "which torch.load(weights_only=True) does not execute (an argparse.Namespace "
            "'opts' is the usual culprit). Re-save it with opts as a plain dict "
            f"(vars(opts)). Loader said: {str(exc).splitlines()[0]}"
        ) from exc
    if not isinstance(ckpt, dict):
        raise ValueError(f"e4e checkpoint {path} holds a {type(ckpt).__name__}, not a dict")
    return ckpt


def _sub_state_dict(ckpt: Mapping[str, Any], prefix: str) -> dict[str, Tensor]:
    sd = ckpt.get("state_dict", ckpt)
    if not isinstance(sd, Mapping):
        return {}
    p = prefix + "."
    return {k[len(p) :]: v for k, v in sd.items() if isinstance(k, str) and k.startswith(p)}


def decoder_state_dict(
    src: str | Path | Mapping[str, Any], *, prefixed: bool = True, map_location: Any = "cpu"
) -> dict[str, Tensor]:
    """The generator weights (rosinality names) stored beside the encoder in an e4e file.

    With ``prefixed=True`` (default) keys keep their ``decoder.`` prefix, so
    ``{"state_dict": decoder_state_dict(ckpt)}`` is what ``stylegan2.load_rosinality`` takes.
    """
    sub = _sub_state_dict(_read_checkpoint(src, map_location), "decoder")
    return {f"decoder.{k}": v for k, v in sub.items()} if prefixed else sub


def _check_opts(opts: Any, where: str) -> dict[str, Any]:
    if opts is None:
        return {}
    if not isinstance(opts, dict):
        raise ValueError(
            f"e4e checkpoint {where}: 'opts' is a {type(opts).__name__}, not a plain dict; "
            "convert it (e.g. vars(namespace)) and re-save"
        )
    return dict(opts)


def _layout_error(where: str, model: nn.Module, sd: Mapping[str, Tensor]) -> str | None:
    differences = summarise_differences(*layout_differences(model.state_dict(), sd))
    if not differences:
        return None
    cfg = getattr(model, "config", None)
    arch = (
        f" (built: widths {cfg.widths}, units {cfg.depth_units}, {cfg.n_styles} styles of "
        f"{cfg.style_dim}; pass config= for non-official encoders)"
        if isinstance(cfg, E4EConfig)
        else ""
    )
    return "; ".join([f"e4e checkpoint {where} does not match the encoder layout{arch}",
                      *differences])


def _resolve_config(
    config: E4EConfig | None, opts: Mapping[str, Any], enc_sd: Mapping[str, Tensor]
) -> E4EConfig:
    if config is not None:
        return config
    if isinstance(opts.get(CONFIG_OPTS_KEY), Mapping):
        return E4EConfig.from_dict(opts[CONFIG_OPTS_KEY])
    cfg = E4EConfig()
    if isinstance(opts.get("stylegan_size"), int):
        cfg = replace(cfg, n_styles=n_styles_for_size(opts["stylegan_size"]))
    w = enc_sd.get("styles.0.linear.weight")
    if w is not None:  # official files carry no config: read what the tensors say
        n = len({k.split(".")[1] for k in enc_sd if k.startswith("styles.")})
        cfg = replace(cfg, n_styles=n, style_dim=int(w.shape[0]))
    return cfg


E4ELoaded = tuple[Encoder4Editing, Tensor | None, dict[str, Any]]
E4ELoadedWithDecoder = tuple[Encoder4Editing, Tensor | None, dict[str, Any], dict[str, Tensor]]


@overload
def load_e4e(
    src: str | Path | Mapping[str, Any],
    *,
    config: E4EConfig | None = ...,
    map_location: Any = ...,
    return_decoder: Literal[False] = ...,
) -> E4ELoaded: ...
@overload
def load_e4e(
    src: str | Path | Mapping[str, Any],
    *,
    config: E4EConfig | None = ...,
    map_location: Any = ...,
    return_decoder: Literal[True],
) -> E4ELoadedWithDecoder: ...
def load_e4e(
    src: str | Path | Mapping[str, Any],
    *,
    config: E4EConfig | None = None,
    map_location: Any = "cpu",
    return_decoder: bool = False,
) -> E4ELoaded | E4ELoadedWithDecoder:
    """Load an e4e checkpoint in the official layout.

    Returns ``(encoder, latent_avg, opts)``; with ``return_decoder=True`` also the
    ``decoder.*`` sub-dict (prefixed keys, see :func:`decoder_state_dict`) as a 4th item.

    * ``encoder``: :class:`Encoder4Editing` in eval mode, fp32 (fp16 stored weights are cast),
      loaded strictly from ``encoder.*``.  Its config is, in order: ``config``, the one
      :func:`save_e4e` recorded in ``opts``, or the official one with ``n_styles`` /
      ``style_dim`` read from the tensors.
    * ``latent_avg``: ``[n_styles, style_dim]`` fp32 (a stored ``[style_dim]`` is
      repeated), or ``None`` when the file has none (compute it from the generator's
      mapping network then, as e4e does).
    * ``opts``: the training options, a plain dict.

    Files are read with ``torch.load(weights_only=True)``: checkpoints that pickle arbitrary
    objects (e.g. an ``argparse.Namespace`` as opts) are refused with a ``ValueError``.
    """
    where = _describe(src)
    ckpt = _read_checkpoint(src, map_location)
    opts = _check_opts(ckpt.get("opts"), where)
    enc_sd = _sub_state_dict(ckpt, "encoder")
    if not enc_sd:
        top = sorted(str(k) for k in ckpt)[:6]
        raise ValueError(f"{where} has no 'encoder.*' weights: not an e4e checkpoint (keys {top})")
    cfg = _resolve_config(config, opts, enc_sd)

    # Build without random init (267 M parameters at full size); the strict load below
    # overwrites every parameter and buffer (the encoder has no non-persistent buffers).
    with torch.device("meta"):
        encoder = Encoder4Editing(cfg)
    err = _layout_error(where, encoder, enc_sd)
    if err:
        raise ValueError(err)
    device = map_location if isinstance(map_location, (str, torch.device)) else "cpu"
    encoder = encoder.to_empty(device=device)
    encoder.load_state_dict(enc_sd, strict=True)  # copies, casting fp16 -> fp32
    encoder.eval()

    latent_avg = ckpt.get("latent_avg")
    if latent_avg is not None:
        if not isinstance(latent_avg, Tensor):
            raise ValueError(f"{where}: latent_avg is a {type(latent_avg).__name__}, not a tensor")
        latent_avg = latent_avg.detach().float().clone()
        if latent_avg.dim() == 1:
            latent_avg = latent_avg.unsqueeze(0).repeat(cfg.n_styles, 1)
        elif latent_avg.dim() == 3 and latent_avg.shape[0] == 1:
            latent_avg = latent_avg[0]
        if tuple(latent_avg.shape) != (cfg.n_styles, cfg.style_dim):
            raise ValueError(
                f"{where}: latent_avg has shape {tuple(latent_avg.shape)}, expected "
                f"[{cfg.n_styles}, {cfg.style_dim}] or [{cfg.style_dim}]"
            )
    if return_decoder:
        dec = {f"decoder.{k}": v for k, v in _sub_state_dict(ckpt, "decoder").items()}
        return encoder, latent_avg, opts, dec
    return encoder, latent_avg, opts


def save_e4e(
    encoder: Encoder4Editing,
    path: str | Path,
    latent_avg: Tensor | None,
    opts: Mapping[str, Any] | argparse.Namespace | None = None,
    decoder_state_dict: Mapping[str, Tensor] | None = None,
    *,
    half: bool = False,
) -> None:
    """Write ``{'state_dict': {'encoder.*', 'decoder.*'}, 'opts': dict, 'latent_avg'}``.

    ``decoder_state_dict`` keys may carry the ``decoder.`` prefix or not.  The encoder's
    config is recorded in ``opts['wordbrush_e4e_config']`` so :func:`load_e4e` can rebuild
    small variants.  ``half=True`` stores floating tensors as fp16.
    """
    if isinstance(opts, argparse.Namespace):
        opts = vars(opts)
    out_opts: dict[str, Any] = dict(opts or {})
    out_opts[CONFIG_OPTS_KEY] = encoder.config.to_dict()

    def cast(t: Tensor) -> Tensor:
        t = t.detach().cpu()
        return t.half() if half and t.is_floating_point() else t.clone()

    sd = {f"encoder.{k}": cast(v) for k, v in encoder.state_dict().items()}
    for k, v in (decoder_state_dict or {}).items():
        sd[k if k.startswith("decoder.") else f"decoder.{k}"] = cast(v)
    ckpt: dict[str, Any] = {"state_dict": sd, "opts": out_opts}
    if latent_avg is not None:
        ckpt["latent_avg"] = cast(latent_avg)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(ckpt, tmp)
    tmp.replace(path)
