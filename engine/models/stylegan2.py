"""StyleGAN2 generator with rosinality/stylegan2-pytorch's exact state-dict layout.

Parameter *and* buffer names and shapes equal those of rosinality's ``Generator`` so that
``g_ema`` from one of its checkpoints (or the ``decoder.*`` part of an e4e checkpoint) loads
with ``strict=True``: for FFHQ-1024 that is 171 keys (138 parameters, 33 buffers) and
30,370,060 parameters. Every weight means what it means there:

* the mapping network is ``style.0`` (PixelNorm, no weights) followed by ``style.1..n_mlp``
  (equalized-lr linear layers whose weights are stored divided by ``lr_mlp`` and scaled by
  ``lr_mlp / sqrt(fan_in)`` at run time, biases scaled by ``lr_mlp``);
* modulated convolutions store ``weight [1, out, in, k, k]`` (scaled by ``1/sqrt(in*k*k)`` at run
  time) and an equalized-lr ``modulation`` layer (bias initialised to 1);
* an upsampling convolution is a stride-2 transposed convolution followed by a [1,3,3,1] blur
  (kernel buffer ``conv.blur.kernel``, multiplied by 4), and every ToRGB after the first
  upsamples the skip image with its own kernel buffer (``to_rgbs.i.upsample.kernel``).

Beyond rosinality this module exposes the style space S (the per-layer modulation outputs) and a
spatial style-mixing hook for Paint-by-Word-style masked edits (:class:`SpatialStyleMix`).

Style layers (the S space), in the order :meth:`Generator.styles` returns them::

    index 0        conv1          (4 px)            fed by W+ index 0
    index 1        to_rgb1        (4 px)            fed by W+ index 1
    index 2 + 3k   convs[2k]      (upsampling conv, input 2^(k+2) px, output 2^(k+3) px)
                                                    fed by W+ index 2k + 1
    index 3 + 3k   convs[2k + 1]  (2^(k+3) px)      fed by W+ index 2k + 2
    index 4 + 3k   to_rgbs[k]     (2^(k+3) px)      fed by W+ index 2k + 3

so W+ index ``2k + 1`` feeds both ``to_rgbs[k - 1]`` (or ``to_rgb1``) and the next upsampling conv,
exactly as rosinality consumes its latents. A 1024-px generator has 26 style layers and 18 W+
entries. :attr:`Generator.style_layers` lists this table programmatically.

The default modulated convolution is the *non-fused* form (scale the input by the style, one
plain convolution with the batch-shared weight, scale the output by the per-sample
demodulation coefficients); it is faster on CPU than the grouped ("fused") convolution, which is
kept behind ``fused=True`` and is numerically equal to it (tested).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layout import layout_differences

__all__ = [
    "MEAN_LATENT_SAMPLES",
    "MEAN_LATENT_SEED",
    "CheckpointLayoutError",
    "Generator",
    "GeneratorConfig",
    "NoiseSpec",
    "SpatialStyleMix",
    "StyleLayer",
    "default_channels",
    "extract_generator_state_dict",
    "infer_rosinality_config",
    "load_rosinality",
    "save_rosinality",
]

#: How many z samples ``load_rosinality`` averages when a checkpoint has no ``latent_avg``.
MEAN_LATENT_SAMPLES = 10_000
#: The seed of those samples, so the fallback mean latent is reproducible.
MEAN_LATENT_SEED = 0

_SQRT2 = math.sqrt(2.0)

NoiseSpec = Literal["fixed", "random"] | Sequence[Tensor | None]
"""``'fixed'``: the ``noises.noise_i`` buffers (deterministic); ``'random'``: fresh Gaussian noise;
or one tensor (``[1 or B, 1, res, res]``) or ``None`` (= random) per conv layer."""


def default_channels(channel_multiplier: int = 2) -> dict[int, int]:
    """rosinality's channel table (resolution -> channels)."""
    return {
        4: 512,
        8: 512,
        16: 512,
        32: 512,
        64: 256 * channel_multiplier,
        128: 128 * channel_multiplier,
        256: 64 * channel_multiplier,
        512: 32 * channel_multiplier,
        1024: 16 * channel_multiplier,
    }


def _make_kernel(k: Sequence[float]) -> Tensor:
    t = torch.tensor(list(k), dtype=torch.float32)
    t = t[None, :] * t[:, None]
    return t / t.sum()


_Taps = tuple[tuple[float, ...], tuple[float, ...]]


def _separable_taps(kernel: Tensor) -> _Taps:
    """The vertical and horizontal 1-D taps of a separable 2-D FIR ``kernel``, flipped for a
    true convolution. ``K = u v^T``  =>  ``u * sum(v) = K.sum(1)``, ``v * sum(u) = K.sum(0)``,
    ``sum(u) sum(v) = K.sum()``."""
    k = kernel.detach().double().cpu()
    return (tuple(torch.flip(k.sum(1) / k.sum(), (0,)).tolist()),
            tuple(torch.flip(k.sum(0), (0,)).tolist()))


def _fir(x: Tensor, taps: _Taps, pad: tuple[int, int]) -> Tensor:
    """Pad, then convolve every channel with the separable kernel whose 1-D ``taps`` are
    given (true convolution, like upfirdn2d).

    StyleGAN2's FIR kernels are outer products of one 1-D kernel (``make_kernel``), which is
    what every official checkpoint stores in its ``kernel`` buffers. So the 2-D filter runs
    as two 1-D passes that accumulate shifted slices in place: on a CPU 3-4 times faster
    than a sum of temporaries or a depthwise ``conv2d`` (a 1024 px render spent half its
    time in the blurs before), and the same to 2e-6.
    """
    x = F.pad(x, (pad[0], pad[1], pad[0], pad[1]))
    for axis, weights in ((-2, taps[0]), (-1, taps[1])):
        n = x.shape[axis] - len(weights) + 1
        out = x.narrow(axis, 0, n) * weights[0]
        for i, weight in enumerate(weights[1:], start=1):
            out = out.add_(x.narrow(axis, i, n), alpha=weight)
        x = out
    return x


class _FIR(nn.Module):
    """A module holding a FIR ``kernel`` buffer (official checkpoints store it) and its 1-D
    taps, read from the buffer again whenever it changes (a checkpoint load)."""

    kernel: Tensor

    def taps(self) -> _Taps:
        version = (self.kernel._version, self.kernel.data_ptr())
        cached = self.__dict__.get("_taps")
        if cached is None or cached[0] != version:
            cached = (version, _separable_taps(self.kernel))
            self.__dict__["_taps"] = cached
        return cached[1]


class PixelNorm(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + 1e-8)


class EqualLinear(nn.Module):
    """Equalized-lr linear layer; the weight is stored divided by ``lr_mul``."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        bias_init: float = 0.0,
        lr_mul: float = 1.0,
        activation: bool = False,
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim).div_(lr_mul))
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init)))
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul
        self.activation = activation

    def forward(self, x: Tensor) -> Tensor:
        out = F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)
        if self.activation:  # rosinality's fused_leaky_relu: bias, lrelu(0.2), gain sqrt(2)
            out = F.leaky_relu(out, 0.2) * _SQRT2
        return out


class FusedLeakyReLU(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(x + self.bias.view(1, -1, 1, 1), 0.2) * _SQRT2


class Blur(_FIR):
    def __init__(self, kernel: Sequence[float], pad: tuple[int, int], upsample_factor: int = 1):
        super().__init__()
        self.register_buffer("kernel", _make_kernel(kernel) * upsample_factor**2)
        self.pad = pad

    def forward(self, x: Tensor) -> Tensor:
        return _fir(x, self.taps(), self.pad)


class Upsample(_FIR):
    """2x FIR upsampling of the skip image (upfirdn2d with up=2, pad=(2, 1) for a 4-tap kernel)."""

    def __init__(self, kernel: Sequence[float], factor: int = 2) -> None:
        super().__init__()
        self.factor = factor
        self.register_buffer("kernel", _make_kernel(kernel) * factor**2)
        p = self.kernel.shape[0] - factor
        self.pad = ((p + 1) // 2 + factor - 1, p // 2)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        f = self.factor
        up = x.new_zeros(b, c, h, f, w, f)
        up[:, :, :, 0, :, 0] = x
        return _fir(up.reshape(b, c, h * f, w * f), self.taps(), self.pad)


_Mix = tuple[Tensor, Tensor, Tensor | None]
"""(fixed style [1|B, in], mask at the input resolution, mask at the output resolution or None)."""


class ModulatedConv2d(nn.Module):
    def __init__(
        self,
        in_channel: int,
        out_channel: int,
        kernel_size: int,
        style_dim: int,
        demodulate: bool = True,
        upsample: bool = False,
        blur_kernel: Sequence[float] = (1, 3, 3, 1),
    ) -> None:
        super().__init__()
        self.in_channel = in_channel
        self.out_channel = out_channel
        self.kernel_size = kernel_size
        self.upsample = upsample
        self.demodulate = demodulate
        if upsample:
            factor = 2
            p = (len(blur_kernel) - factor) - (kernel_size - 1)
            self.blur = Blur(blur_kernel, pad=((p + 1) // 2 + factor - 1, p // 2 + 1),
                             upsample_factor=factor)
        self.scale = 1 / math.sqrt(in_channel * kernel_size**2)
        self.padding = kernel_size // 2
        self.weight = nn.Parameter(
            torch.randn(1, out_channel, in_channel, kernel_size, kernel_size)
        )
        self.modulation = EqualLinear(style_dim, in_channel, bias_init=1)

    def _demod(self, s: Tensor) -> Tensor:
        """Per-sample demodulation coefficients ``[B, out]`` of style ``s [B, in]``."""
        w2 = (self.weight[0] * self.scale).square().sum((2, 3))  # [out, in]
        return torch.rsqrt(s.square() @ w2.t() + 1e-8)

    def _conv(self, x: Tensor, weight: Tensor, groups: int = 1) -> Tensor:
        if self.upsample:
            out = F.conv_transpose2d(x, weight, stride=2, groups=groups)
            return self.blur(out)
        return F.conv2d(x, weight, padding=self.padding, groups=groups)

    def forward(self, x: Tensor, s: Tensor, fused: bool = False, mix: _Mix | None = None) -> Tensor:
        """Modulated convolution of ``x`` with the style ``s [B, in]`` (a modulation output).

        With ``mix = (s_fixed, m_in, m_out)`` the modulation becomes spatially varying,
        ``x * (m_in * s + (1 - m_in) * s_fixed)``; the output is demodulated with the fixed style's
        coefficients, or, when ``m_out`` is given, with ``m_out * d(s) + (1 - m_out) * d(s_fixed)``.
        The fused path cannot vary spatially, so a mix always runs the non-fused path.
        """
        b = x.shape[0]
        if fused and mix is None:
            w = self.scale * self.weight * s.view(b, 1, self.in_channel, 1, 1)
            if self.demodulate:
                d = torch.rsqrt(w.square().sum((2, 3, 4)) + 1e-8)
                w = w * d.view(b, self.out_channel, 1, 1, 1)
            k = self.kernel_size
            xg = x.reshape(1, b * self.in_channel, *x.shape[2:])
            if self.upsample:
                w = w.transpose(1, 2).reshape(b * self.in_channel, self.out_channel, k, k)
            else:
                w = w.reshape(b * self.out_channel, self.in_channel, k, k)
            out = self._conv(xg, w, groups=b)
            return out.reshape(b, self.out_channel, *out.shape[2:])

        weight = self.weight[0] * self.scale  # [out, in, k, k]
        if mix is None:
            x = x * s.view(b, -1, 1, 1)
        else:
            s_fixed, m_in, _ = mix
            x = x * (m_in * s[:, :, None, None] + (1 - m_in) * s_fixed[:, :, None, None])
        out = self._conv(x, weight.transpose(0, 1) if self.upsample else weight)
        if self.demodulate:
            if mix is None:
                d = self._demod(s)[:, :, None, None]
            else:
                s_fixed, _, m_out = mix
                d = self._demod(s_fixed)[:, :, None, None]
                if m_out is not None:
                    d = m_out * self._demod(s)[:, :, None, None] + (1 - m_out) * d
            out = out * d
        return out


class NoiseInjection(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor, noise: Tensor | None = None) -> Tensor:
        if noise is None:
            noise = x.new_empty(x.shape[0], 1, *x.shape[2:]).normal_()
        return x + self.weight * noise.to(x.dtype)


class ConstantInput(nn.Module):
    def __init__(self, channel: int, size: int = 4) -> None:
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channel, size, size))

    def forward(self, batch: int) -> Tensor:
        return self.input.expand(batch, -1, -1, -1)


class StyledConv(nn.Module):
    def __init__(
        self,
        in_channel: int,
        out_channel: int,
        kernel_size: int,
        style_dim: int,
        upsample: bool = False,
        blur_kernel: Sequence[float] = (1, 3, 3, 1),
    ) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_channel, out_channel, kernel_size, style_dim,
                                    upsample=upsample, blur_kernel=blur_kernel)
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_channel)

    def forward(self, x: Tensor, s: Tensor, noise: Tensor | None, fused: bool = False,
                mix: _Mix | None = None) -> Tensor:
        return self.activate(self.noise(self.conv(x, s, fused=fused, mix=mix), noise))


class ToRGB(nn.Module):
    def __init__(self, in_channel: int, style_dim: int, upsample: bool = True,
                 blur_kernel: Sequence[float] = (1, 3, 3, 1)) -> None:
        super().__init__()
        if upsample:
            self.upsample = Upsample(blur_kernel)
        self.conv = ModulatedConv2d(in_channel, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: Tensor, s: Tensor, skip: Tensor | None = None, fused: bool = False,
                mix: _Mix | None = None) -> Tensor:
        out = self.conv(x, s, fused=fused, mix=mix) + self.bias
        if skip is not None:
            out = out + self.upsample(skip)
        return out


class StyleLayer(NamedTuple):
    """One modulated layer of the style space S."""

    index: int  #: position in the list returned by :meth:`Generator.styles`
    name: str  #: module path, e.g. ``"convs.3"`` or ``"to_rgbs.1"``
    w_index: int  #: which W+ entry feeds it
    channels: int  #: length of its style vector (the layer's input channels)
    resolution: int  #: resolution of the feature map the style multiplies (the layer's input)
    out_resolution: int  #: resolution of the layer's output
    is_rgb: bool  #: ToRGB layers are not demodulated


@dataclass
class SpatialStyleMix:
    """Paint-by-Word hook: blend edited and fixed styles per pixel, layer by layer.

    Every modulation becomes ``style * m + fixed_style * (1 - m)`` with ``m`` the mask at the
    resolution of the feature map that style multiplies (for an upsampling conv that is its
    *input*, half its output resolution). Demodulation:

    * ``demod="fixed"`` (default, as Paint-by-Word does): coefficients from the fixed style.
      Then ``m == 0`` reproduces the fixed render exactly, but ``m == 1`` is *not* the edited
      render (its demodulation still comes from the fixed style).
    * ``demod="mixed"``: coefficients blended with the mask at the layer's output resolution,
      ``m * d(style) + (1 - m) * d(fixed)``, so ``m == 1`` gives the edited render and ``m == 0``
      the fixed render, both exactly.

    ``masks`` maps resolution -> ``[1 or B, 1, res, res]`` in [0, 1]; a missing resolution is
    resized (area / bilinear) from the finest mask given. :meth:`from_mask` builds the dict with
    Paint-by-Word's blur rule.
    """

    fixed_styles: list[Tensor]
    masks: dict[int, Tensor]
    demod: Literal["fixed", "mixed"] = "fixed"

    def mask_at(self, res: int) -> Tensor:
        """The mask at ``res`` px (resized from the finest one when not given; not cached, so
        masks that require grad stay differentiable)."""
        if res in self.masks:
            return self.masks[res]
        if not self.masks:
            raise ValueError("SpatialStyleMix.masks is empty")
        return _resize_mask(self.masks[max(self.masks)], res)

    @classmethod
    def from_mask(
        cls,
        fixed_styles: list[Tensor],
        mask: Tensor,
        size: int,
        demod: Literal["fixed", "mixed"] = "fixed",
        blur_above: int | None = 16,
    ) -> SpatialStyleMix:
        """Resize ``mask [1|B, 1, H, W]`` to every resolution 4..``size``.

        Following Paint-by-Word, masks above ``blur_above`` px are Gaussian-blurred with
        sigma = res / 16 (kernel ``2 * int(sigma) - 1``, replicate padding); ``None`` disables it.
        """
        if mask.ndim != 4 or mask.shape[1] != 1:
            raise ValueError(f"mask must be [B, 1, H, W], got {tuple(mask.shape)}")
        masks: dict[int, Tensor] = {}
        res = 4
        while res <= size:
            m = _resize_mask(mask.float(), res)
            if blur_above is not None and res > blur_above:
                m = _gaussian_blur(m, res / 16.0)
            masks[res] = m
            res *= 2
        return cls(fixed_styles=fixed_styles, masks=masks, demod=demod)


def _resize_mask(m: Tensor, res: int) -> Tensor:
    if m.shape[-2:] == (res, res):
        return m
    if m.shape[-1] >= res:
        return F.interpolate(m, size=(res, res), mode="area")
    return F.interpolate(m, size=(res, res), mode="bilinear", align_corners=False)


def _gaussian_blur(m: Tensor, sigma: float) -> Tensor:
    k = max(int(sigma) * 2 - 1, 1)
    if k == 1:
        return m
    r = torch.arange(k, dtype=m.dtype, device=m.device) - (k - 1) / 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    g = g / g.sum()
    p = k // 2
    m = F.pad(m, (p, p, p, p), mode="replicate")
    m = F.conv2d(m, g.view(1, 1, 1, k))
    return F.conv2d(m, g.view(1, 1, k, 1))


class Generator(nn.Module):
    """rosinality-compatible StyleGAN2 generator (see the module docstring).

    ``channels`` replaces the default channel table (resolution -> width) when given; it must
    cover every resolution from 4 to ``size``. ``fused`` selects the grouped-convolution
    modulated conv as the default path (the non-fused one is faster on CPU).
    """

    latent_avg: Tensor | None

    def __init__(
        self,
        size: int,
        style_dim: int = 512,
        n_mlp: int = 8,
        channel_multiplier: int = 2,
        channels: Mapping[int, int] | None = None,
        lr_mlp: float = 0.01,
        blur_kernel: Sequence[float] = (1, 3, 3, 1),
        fused: bool = False,
    ) -> None:
        super().__init__()
        log_size = int(math.log2(size))
        if size < 4 or 2**log_size != size:
            raise ValueError(f"size must be a power of two >= 4, got {size}")
        self.size = size
        self.style_dim = style_dim
        self.n_mlp = n_mlp
        self.log_size = log_size
        self.fused = fused
        table = dict(channels) if channels is not None else default_channels(channel_multiplier)
        missing = [2**i for i in range(2, log_size + 1) if 2**i not in table]
        if missing:
            raise ValueError(f"channels has no entry for resolutions {missing}")
        self.channels = {2**i: int(table[2**i]) for i in range(2, log_size + 1)}

        self.style = nn.Sequential(
            PixelNorm(),
            *[EqualLinear(style_dim, style_dim, lr_mul=lr_mlp, activation=True)
              for _ in range(n_mlp)],
        )
        c4 = self.channels[4]
        self.input = ConstantInput(c4)
        self.conv1 = StyledConv(c4, c4, 3, style_dim, blur_kernel=blur_kernel)
        self.to_rgb1 = ToRGB(c4, style_dim, upsample=False)

        self.num_layers = (log_size - 2) * 2 + 1
        self.n_latent = log_size * 2 - 2
        self.convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        self.noises = nn.Module()
        for layer_idx in range(self.num_layers):
            res = 2 ** ((layer_idx + 5) // 2)
            self.noises.register_buffer(f"noise_{layer_idx}", torch.randn(1, 1, res, res))
        in_ch = c4
        for i in range(3, log_size + 1):
            out_ch = self.channels[2**i]
            self.convs.append(StyledConv(in_ch, out_ch, 3, style_dim, upsample=True,
                                         blur_kernel=blur_kernel))
            self.convs.append(StyledConv(out_ch, out_ch, 3, style_dim, blur_kernel=blur_kernel))
            self.to_rgbs.append(ToRGB(out_ch, style_dim, blur_kernel=blur_kernel))
            in_ch = out_ch
        # Not part of the state dict (keeps the official 171-key layout); set by the loaders.
        self.register_buffer("latent_avg", None, persistent=False)
        self.style_layers: list[StyleLayer] = self._style_table()

    # ------------------------------------------------------------------ structure
    def _style_table(self) -> list[StyleLayer]:
        c4 = self.channels[4]
        table = [StyleLayer(0, "conv1", 0, c4, 4, 4, False),
                 StyleLayer(1, "to_rgb1", 1, c4, 4, 4, True)]
        in_ch = c4
        for k in range(self.log_size - 2):
            res = 2 ** (k + 3)
            out_ch = self.channels[res]
            j = len(table)
            table += [
                StyleLayer(j, f"convs.{2 * k}", 2 * k + 1, in_ch, res // 2, res, False),
                StyleLayer(j + 1, f"convs.{2 * k + 1}", 2 * k + 2, out_ch, res, res, False),
                StyleLayer(j + 2, f"to_rgbs.{k}", 2 * k + 3, out_ch, res, res, True),
            ]
            in_ch = out_ch
        return table

    def _modconv(self, layer: StyleLayer) -> ModulatedConv2d:
        mod = self.get_submodule(layer.name)
        return mod.conv  # type: ignore[return-value]

    @property
    def num_style_layers(self) -> int:
        return len(self.style_layers)

    def synthesis_macs(self) -> int:
        """One image's synthesis cost in multiply-accumulates, as a relative measure:
        every modulated layer's convolution counted at its output resolution (the
        upsampling ones, transposed convolutions, do about a quarter of that; the bias,
        noise and blur are left out). A rosinality 1024 x 1024 generator counts 1.4e11."""
        total = 0
        for lay in self.style_layers:
            _, out_channels, in_channels, k, _ = self._modconv(lay).weight.shape
            total += out_channels * in_channels * k * k * lay.out_resolution ** 2
        return total

    # ------------------------------------------------------------------ latents
    def mapping(self, z: Tensor) -> Tensor:
        """z ``[B, style_dim]`` -> w ``[B, style_dim]`` (PixelNorm + MLP)."""
        return self.style(z)

    get_latent = mapping  # rosinality's name

    @torch.no_grad()
    def mean_latent(self, n: int = MEAN_LATENT_SAMPLES, seed: int | None = None,
                    chunk: int = 2048) -> Tensor:
        """Mean of ``mapping(z)`` over ``n`` Gaussian z, ``[1, style_dim]``.

        With ``seed`` the z come from a private CPU generator, so the result is reproducible and
        the global RNG is untouched.
        """
        dev = self.input.input.device
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        total = torch.zeros(1, self.style_dim, dtype=torch.float64, device=dev)
        done = 0
        while done < n:
            m = min(chunk, n - done)
            z = torch.randn(m, self.style_dim, generator=gen).to(dev)
            total += self.style(z).double().sum(0, keepdim=True)
            done += m
        return (total / n).float()

    def truncate(self, w: Tensor, psi: float, w_avg: Tensor | None = None) -> Tensor:
        """``w_avg + psi * (w - w_avg)``; ``w_avg`` defaults to :attr:`latent_avg`."""
        if psi == 1:
            return w
        if w_avg is None:
            w_avg = self.latent_avg
        if w_avg is None:
            raise ValueError("truncation needs truncation_latent (or a loaded latent_avg)")
        w_avg = w_avg.to(w).reshape(-1, self.style_dim)
        if w.ndim == 3:
            w_avg = w_avg.unsqueeze(1) if w_avg.shape[0] == 1 else w_avg.unsqueeze(0)
        return w_avg + psi * (w - w_avg)

    def _as_w_plus(self, w: Tensor) -> Tensor:
        if w.ndim == 2:
            return w.unsqueeze(1).expand(-1, self.n_latent, -1)
        if w.ndim != 3 or w.shape[1:] != (self.n_latent, self.style_dim):
            raise ValueError(
                f"expected w [B, {self.style_dim}] or w+ [B, {self.n_latent}, {self.style_dim}], "
                f"got {tuple(w.shape)}"
            )
        return w

    # ------------------------------------------------------------------ noise
    def make_noise(self, batch: int = 1, generator: torch.Generator | None = None) -> list[Tensor]:
        """Fresh noise maps, one per conv layer (``[batch, 1, res, res]``)."""
        dev = self.input.input.device
        return [
            torch.randn(batch, 1, *self.noise_buffer(i).shape[2:], generator=generator).to(dev)
            for i in range(self.num_layers)
        ]

    def noise_buffer(self, i: int) -> Tensor:
        return getattr(self.noises, f"noise_{i}")

    def _resolve_noise(self, noise: NoiseSpec) -> list[Tensor | None]:
        if isinstance(noise, str):
            if noise == "fixed":
                return [self.noise_buffer(i) for i in range(self.num_layers)]
            if noise == "random":
                return [None] * self.num_layers
            raise ValueError(f"noise must be 'fixed', 'random' or a list, got {noise!r}")
        noise = list(noise)
        if len(noise) != self.num_layers:
            raise ValueError(f"expected {self.num_layers} noise maps, got {len(noise)}")
        return noise

    # ------------------------------------------------------------------ synthesis
    def styles(self, w_plus: Tensor) -> list[Tensor]:
        """Style space S: every modulated layer's modulation output, ``[B, channels]`` each.

        Order and W+ index per entry: see the module docstring / :attr:`style_layers`.
        """
        w_plus = self._as_w_plus(w_plus)
        return [self._modconv(lay).modulation(w_plus[:, lay.w_index]) for lay in self.style_layers]

    def synthesis(self, w_plus: Tensor, noise: NoiseSpec = "fixed",
                  fused: bool | None = None) -> Tensor:
        """Render ``w_plus [B, n_latent, style_dim]`` (or w ``[B, style_dim]``, broadcast)."""
        return self.synthesis_from_styles(self.styles(w_plus), noise=noise, fused=fused)

    def synthesis_from_styles(
        self,
        styles: Sequence[Tensor],
        noise: NoiseSpec = "fixed",
        style_mix: SpatialStyleMix | None = None,
        fused: bool | None = None,
    ) -> Tensor:
        """Render style-space vectors (as :meth:`styles` returns them) -> ``[B, 3, size, size]``.

        ``style_mix`` blends them per pixel with ``style_mix.fixed_styles`` (see
        :class:`SpatialStyleMix`); layers with the mix always use the non-fused path.
        """
        if len(styles) != self.num_style_layers:
            raise ValueError(f"expected {self.num_style_layers} style vectors, got {len(styles)}")
        if style_mix is not None and len(style_mix.fixed_styles) != self.num_style_layers:
            raise ValueError(
                f"style_mix.fixed_styles has {len(style_mix.fixed_styles)} entries, "
                f"expected {self.num_style_layers}"
            )
        fused = self.fused if fused is None else fused
        noises = self._resolve_noise(noise)
        batch = max(s.shape[0] for s in styles)

        def mix(j: int) -> _Mix | None:
            if style_mix is None:
                return None
            lay = self.style_layers[j]
            m_out = (style_mix.mask_at(lay.out_resolution)
                     if style_mix.demod == "mixed" and not lay.is_rgb else None)
            return (style_mix.fixed_styles[j], style_mix.mask_at(lay.resolution), m_out)

        def style(j: int) -> Tensor:
            s = styles[j]
            return s.expand(batch, -1) if s.shape[0] != batch else s

        x = self.input(batch)
        x = self.conv1(x, style(0), noises[0], fused=fused, mix=mix(0))
        skip = self.to_rgb1(x, style(1), fused=fused, mix=mix(1))
        j = 2
        for k, to_rgb in enumerate(self.to_rgbs):
            x = self.convs[2 * k](x, style(j), noises[2 * k + 1], fused=fused, mix=mix(j))
            x = self.convs[2 * k + 1](x, style(j + 1), noises[2 * k + 2], fused=fused,
                                      mix=mix(j + 1))
            skip = to_rgb(x, style(j + 2), skip, fused=fused, mix=mix(j + 2))
            j += 3
        return skip

    def forward(
        self,
        styles_or_z: Tensor | Sequence[Tensor],
        input_is_latent: bool = False,
        truncation: float = 1.0,
        truncation_latent: Tensor | None = None,
        noise: NoiseSpec = "fixed",
        return_latents: bool = False,
        inject_index: int | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """rosinality-like entry point: ``(image, w_plus if return_latents else None)``.

        ``styles_or_z``: z ``[B, style_dim]`` (or w / w+ with ``input_is_latent``), or a list of
        two for style mixing at ``inject_index`` (default: the middle). Unlike rosinality the
        default noise is ``'fixed'`` (deterministic). Truncation defaults to :attr:`latent_avg`.
        """
        items = [styles_or_z] if isinstance(styles_or_z, Tensor) else list(styles_or_z)
        if not 1 <= len(items) <= 2:
            raise ValueError("pass one latent tensor, or two for style mixing")
        if not input_is_latent:
            items = [self.mapping(z) for z in items]
        items = [self.truncate(w, truncation, truncation_latent) for w in items]
        if len(items) == 1:
            latent = self._as_w_plus(items[0])
        else:
            idx = self.n_latent // 2 if inject_index is None else inject_index
            a, b = (self._as_w_plus(w) for w in items)
            latent = torch.cat([a[:, :idx], b[:, idx:]], dim=1)
        image = self.synthesis(latent, noise=noise)
        return image, (latent if return_latents else None)


# ---------------------------------------------------------------------- checkpoints
class CheckpointLayoutError(ValueError):
    """A checkpoint's keys or shapes do not match the generator it should load into."""


def _first(items: Sequence[str], n: int = 5) -> str:
    shown = ", ".join(items[:n])
    return shown + (f", ... ({len(items) - n} more)" if len(items) > n else "")


@dataclass(frozen=True)
class GeneratorConfig:
    """What a generator state dict says about its architecture."""

    size: int
    style_dim: int
    n_mlp: int
    channels: dict[int, int]


def infer_rosinality_config(sd: Mapping[str, Tensor]) -> GeneratorConfig:
    """Read ``size``, ``style_dim``, ``n_mlp`` and the channel table off a generator state dict."""
    try:
        n_rgbs = 1 + max(
            (int(k.split(".")[1]) for k in sd if k.startswith("to_rgbs.")), default=-1
        )
        style_dim = int(sd["style.1.weight"].shape[0])
        n_mlp = sum(1 for k in sd if k.startswith("style.") and k.endswith(".weight"))
        channels = {4: int(sd["input.input"].shape[1])}
        for k in range(n_rgbs):
            channels[2 ** (k + 3)] = int(sd[f"convs.{2 * k}.conv.weight"].shape[1])
    except (KeyError, ValueError, IndexError) as e:
        raise CheckpointLayoutError(
            f"not a rosinality StyleGAN2 generator state dict (could not read {e})"
        ) from None
    return GeneratorConfig(2 ** (n_rgbs + 2), style_dim, n_mlp, channels)


def extract_generator_state_dict(
    ckpt: Mapping[str, object], name: str = "<checkpoint>"
) -> tuple[dict[str, Tensor], Tensor | None]:
    """Pull ``(generator state dict, latent_avg or None)`` out of a loaded checkpoint.

    Accepts ``{"g_ema": sd, "latent_avg": ...}`` (rosinality), ``{"state_dict": {"decoder.*":
    ...}, "latent_avg": ...}`` (e4e, and CLIPInverter's files without their remapper; the
    ``decoder.`` prefix is stripped and e4e's repeated
    ``[n_latent, style_dim]`` latent_avg is averaged to ``[style_dim]``) and a bare generator
    state dict.
    """
    if "g_ema" in ckpt:
        sd = ckpt["g_ema"]
    elif "state_dict" in ckpt:
        full = ckpt["state_dict"]
        if not isinstance(full, Mapping):
            raise CheckpointLayoutError(f"{name}: 'state_dict' is not a mapping")
        # CLIPInverter's files keep its remapper beside the generator: not the generator's
        sd = {k[len("decoder."):]: v for k, v in full.items() if k.startswith("decoder.")
              and not k.startswith(("decoder.affine_mlps.", "decoder.lambdas."))}
        if not sd:
            raise CheckpointLayoutError(f"{name}: 'state_dict' has no 'decoder.*' keys")
    elif "style.1.weight" in ckpt:
        sd = ckpt
    else:
        raise CheckpointLayoutError(
            f"{name}: expected a 'g_ema' or 'state_dict' entry, found keys {_first(list(ckpt))}"
        )
    if not isinstance(sd, Mapping):
        raise CheckpointLayoutError(f"{name}: generator state dict is not a mapping")
    sd = {k: v for k, v in sd.items() if isinstance(v, Tensor)}
    avg = ckpt.get("latent_avg")
    if isinstance(avg, Tensor):
        avg = avg.float()
        if avg.ndim == 2:
            avg = avg.mean(0)
        avg = avg.reshape(-1)
    else:
        avg = None
    return sd, avg


def _check_layout(model_sd: Mapping[str, Tensor], sd: Mapping[str, Tensor], name: str,
                  what: str) -> None:
    missing, unexpected, shapes = layout_differences(model_sd, sd)
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s): {_first(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s): {_first(unexpected)}")
        if shapes:
            parts.append(f"{len(shapes)} shape mismatch(es) (checkpoint vs model): "
                         f"{_first(shapes, 3)}")
        raise CheckpointLayoutError(f"{name}: does not match {what}: " + "; ".join(parts))


def load_rosinality(
    source: str | os.PathLike[str] | Mapping[str, object],
    *,
    size: int | None = None,
    channel_multiplier: int | None = None,
    style_dim: int | None = None,
    n_mlp: int | None = None,
    channels: Mapping[int, int] | None = None,
    map_location: str | torch.device = "cpu",
) -> tuple[Generator, Tensor]:
    """Load a rosinality (or e4e ``decoder.*``) generator with ``strict=True``.

    Returns ``(generator in eval mode, latent_avg [style_dim])``. The file is read with
    ``torch.load(..., weights_only=True)``. Arguments left as ``None`` are inferred from the
    checkpoint (``size`` from the number of ToRGB layers, widths from the weight shapes); given
    ones are checked, and any key or shape mismatch raises :class:`CheckpointLayoutError` naming
    the file and the first offending keys. Half-precision weights are cast to float32.

    If the checkpoint has no ``latent_avg`` (rosinality's ``train.py`` saves none), it is
    computed as the mean of ``mapping(z)`` over :data:`MEAN_LATENT_SAMPLES` (10,000) z drawn with
    seed :data:`MEAN_LATENT_SEED` (0).
    """
    if isinstance(source, Mapping):
        name, ckpt = "<checkpoint dict>", source
    else:
        name = os.fspath(source)
        ckpt = torch.load(name, map_location=map_location, weights_only=True)
        if not isinstance(ckpt, Mapping):
            raise CheckpointLayoutError(f"{name}: expected a dict, got {type(ckpt).__name__}")
    sd, latent_avg = extract_generator_state_dict(ckpt, name)
    cfg = infer_rosinality_config(sd)
    if size is not None and size != cfg.size:
        raise CheckpointLayoutError(
            f"{name}: checkpoint is a {cfg.size}px generator, size={size} was requested"
        )
    if channels is None:
        channels = (default_channels(channel_multiplier) if channel_multiplier is not None
                    else cfg.channels)
    with torch.random.fork_rng(devices=[]):  # the random init is overwritten: leave the RNG be
        g = Generator(
            cfg.size,
            style_dim=style_dim if style_dim is not None else cfg.style_dim,
            n_mlp=n_mlp if n_mlp is not None else cfg.n_mlp,
            channels=channels,
        )
    model_sd = g.state_dict()
    what = (f"Generator(size={g.size}, style_dim={g.style_dim}, n_mlp={g.n_mlp}, "
            f"channels={g.channels})")
    _check_layout(model_sd, sd, name, what)
    sd = {k: (v.to(model_sd[k].dtype) if v.is_floating_point() else v) for k, v in sd.items()}
    g.load_state_dict(sd, strict=True)
    g = g.to(map_location).eval()
    if latent_avg is None:
        latent_avg = g.mean_latent(MEAN_LATENT_SAMPLES, seed=MEAN_LATENT_SEED)[0]
    elif latent_avg.numel() != g.style_dim:
        raise CheckpointLayoutError(
            f"{name}: latent_avg has {latent_avg.numel()} values, expected {g.style_dim}"
        )
    latent_avg = latent_avg.to(g.input.input.device)
    g.latent_avg = latent_avg
    return g, latent_avg


def save_rosinality(
    g: Generator,
    path: str | os.PathLike[str],
    latent_avg: Tensor | None = None,
    *,
    dtype: torch.dtype | None = None,
) -> None:
    """Write ``{"g_ema": state_dict, "latent_avg": [style_dim]}`` in rosinality's layout.

    ``latent_avg`` defaults to ``g.latent_avg`` (omitted if neither is set); ``dtype`` (e.g.
    ``torch.float16``) casts the floating tensors for a smaller file.
    """
    sd = {k: v.detach().cpu() for k, v in g.state_dict().items()}
    if dtype is not None:
        sd = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in sd.items()}
    ckpt: dict[str, object] = {"g_ema": sd}
    if latent_avg is None:
        latent_avg = g.latent_avg
    if latent_avg is not None:
        avg = latent_avg.detach().cpu().reshape(-1)
        ckpt["latent_avg"] = avg.to(dtype) if dtype is not None else avg
    torch.save(ckpt, os.fspath(path))
