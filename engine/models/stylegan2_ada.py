"""Import NVIDIA stylegan2-ada-pytorch ``.pkl`` generators without executing pickled code.

NVIDIA's snapshots pickle whole module objects: each network class is wrapped by
``torch_utils.persistence``, which stores the class's *source code* in the pickle and ``exec``s it
on load. We never do that. :class:`SafeAdaUnpickler` resolves only

* what rebuilds tensors (``torch._utils._rebuild_tensor_v2`` / ``_rebuild_parameter``, and
  ``torch.storage._load_from_bytes``, which we replace by ``torch.load(..., weights_only=True)``),
* plain containers (``collections.OrderedDict``, ``builtins.set`` ...), and
* inert stand-ins for everything NVIDIA-specific (``torch_utils.persistence.
  _reconstruct_persistent_obj``, ``training.*``, ``torch_utils.*``, ``dnnlib.*`` classes, numpy
  scalars / dtypes / arrays): objects that only *record* their arguments and pickled state
  (a module's ``__dict__``: ``_parameters``, ``_buffers``, ``_modules`` ...) and run no code.

Any other global (``os.system``, ``builtins.eval``, ``subprocess.*`` ...) raises
:class:`AdaPickleError` before anything is called. The recorded ``G_ema`` tree is then walked into
a flat state dict and converted to rosinality's layout:

====================================  =============================================
ada (``G_ema``)                        rosinality (:class:`~engine.models.stylegan2.Generator`)
====================================  =============================================
``mapping.fc{i}.weight/bias``          ``style.{i+1}.weight/bias``
``mapping.w_avg``                      ``latent_avg``
``synthesis.b4.const [C,4,4]``         ``input.input [1,C,4,4]``
``synthesis.b4.conv1.*``               ``conv1.*``
``synthesis.b4.torgb.*``               ``to_rgb1.*``
``synthesis.b{R}.conv0 / conv1``       ``convs.{2k} / convs.{2k+1}``, ``k = log2(R) - 3``
``synthesis.b{R}.torgb``               ``to_rgbs.{k}``
``*.affine.weight/bias``               ``*.conv.modulation.weight/bias``
``*.weight [O,I,k,k]``                 ``*.conv.weight [1,O,I,k,k]``
``*.bias [O]`` (conv / torgb)          ``*.activate.bias [O]`` / ``*.bias [1,3,1,1]``
``*.noise_strength []``                ``*.noise.weight [1]``
``*.noise_const [R,R]``                ``noises.noise_{2k+1 / 2k+2} [1,1,R,R]`` (b4: ``noise_0``)
``*.resample_filter``                  dropped (checked to be the [1,3,3,1] filter)
====================================  =============================================

Why no weight rescaling is needed (checked against ada's ``training/networks.py``):

* ``FullyConnectedLayer`` stores ``randn / lr_multiplier`` and multiplies by
  ``weight_gain = lr_multiplier / sqrt(in)`` and ``bias_gain = lr_multiplier`` at run time:
  exactly rosinality's ``EqualLinear`` (``randn / lr_mul``, ``scale = lr_mul / sqrt(in)``,
  ``bias * lr_mul``). Mapping layers use lr 0.01 in both; the affines lr 1. If a pickle records a
  different ``bias_gain`` the weights are rescaled so that the effective weights are equal.
* ``SynthesisLayer`` applies *no* gain to its conv weight, rosinality multiplies by
  ``1/sqrt(in*k*k)``; both demodulate, which cancels any constant factor (up to where the
  ``1e-8`` epsilon sits: negligible).
* ``ToRGBLayer`` multiplies the *styles* by ``1/sqrt(in)``, rosinality multiplies the *weight* by
  the same factor; the product is the same, so S-space vectors here are the affine outputs before
  that gain (rosinality's convention).
* Up-sampling: ada's ``conv2d_resample`` (transposed conv, stride 2, no weight flip, then the
  [1,3,3,1] filter with gain 4 and padding 1) and its skip ``upsample2d`` are rosinality's
  transposed conv + ``Blur`` and ``Upsample``; bias + lrelu(0.2) * sqrt(2) and noise
  ``noise_const * noise_strength`` match too.

Verification status: names, shapes and this mapping are tested here on a synthetic pickle that
mimics ada's structure (tests cannot import NVIDIA's code). Outputs were additionally compared
once, outside the test-suite, against NVIDIA's own ``Generator`` (their code run on CPU with its
reference ops; random weights; 32 px with 2 mapping layers and 64 px with 8, ``conv_clamp=256``;
their pickles read by this module): w agreed exactly and images to 2e-6 (max abs, image range
±2.6), with and without truncation and for the fused and non-fused paths. Known
differences that remain: ada clamps conv outputs to ±``conv_clamp`` (256 in the official configs;
rosinality does not clamp, which only matters for activations beyond ±256) and runs its highest
resolutions in fp16 on GPU, while this port computes in fp32.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import re
import struct
import warnings
from collections.abc import Mapping
from typing import IO, Any

import torch
from torch import Tensor

from engine.models.stylegan2 import (
    MEAN_LATENT_SAMPLES,
    MEAN_LATENT_SEED,
    Generator,
    _check_layout,
    save_rosinality,
)

__all__ = [
    "AdaPickleError",
    "InertDict",
    "InertObject",
    "SafeAdaUnpickler",
    "ada_module_state_dict",
    "convert_ada_pkl",
    "convert_ada_state_dict",
    "load_stylegan2_ada",
    "read_ada_pickle",
]


class AdaPickleError(ValueError):
    """The pickle holds something we refuse to load, or no StyleGAN2-ADA generator."""


# ---------------------------------------------------------------------- inert stand-ins
class InertObject:
    """Stand-in for a pickled object of a class we will not import. Runs no code.

    ``class_name``: the pickled class (for persistent objects, ada's own class name such as
    ``"SynthesisLayer"``); ``args``: constructor arguments; ``state``: what ``__setstate__``
    received (for an ``nn.Module``, its ``__dict__``).
    """

    qualname = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> InertObject:
        obj = super().__new__(cls)
        obj.class_name = cls.qualname
        obj.args = args
        obj.state = None
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<inert {self.class_name}>"


class InertDict(dict):  # type: ignore[type-arg]
    """Stand-in for ``dnnlib.EasyDict`` (a dict subclass): keeps the items, runs no code."""

    qualname = "dnnlib.util.EasyDict"

    def __setstate__(self, state: Any) -> None:
        self.state = state


_inert_classes: dict[str, type[InertObject]] = {}


def _inert_class(qualname: str) -> type[InertObject]:
    if qualname not in _inert_classes:
        name = qualname.rsplit(".", 1)[-1]
        _inert_classes[qualname] = type(name, (InertObject,), {"qualname": qualname})
    return _inert_classes[qualname]


def _reconstruct_persistent(meta: Any) -> InertObject:
    """Replaces ``torch_utils.persistence._reconstruct_persistent_obj``: records, never execs."""
    if not isinstance(meta, Mapping) or not isinstance(meta.get("class_name"), str):
        raise AdaPickleError("malformed persistent object in the pickle")
    if meta.get("type", "class") != "class":
        raise AdaPickleError(f"unsupported persistent object type {meta.get('type')!r}")
    obj = _inert_class("persistent." + meta["class_name"])()
    obj.class_name = meta["class_name"]
    obj.state = meta.get("state")
    return obj


_NP_STRUCT = {"f8": "d", "f4": "f", "f2": "e", "i8": "q", "i4": "i", "i2": "h", "i1": "b",
              "u8": "Q", "u4": "I", "u2": "H", "u1": "B", "b1": "?"}


def _numpy_scalar(dtype: Any, data: Any = b"") -> Any:
    """Decode a pickled numpy scalar of a plain numeric dtype to a Python number."""
    if isinstance(dtype, InertObject) and dtype.args and isinstance(data, bytes):
        code = dtype.args[0]
        order = "<"
        if isinstance(dtype.state, tuple) and len(dtype.state) > 1 and dtype.state[1] == ">":
            order = ">"
        fmt = _NP_STRUCT.get(code) if isinstance(code, str) else None
        if fmt is not None and struct.calcsize(fmt) == len(data):
            return struct.unpack(order + fmt, data)[0]
    rec = _inert_class("numpy.generic")()
    rec.args = (dtype, data)
    return rec


def _numpy_reconstruct(*args: Any) -> InertObject:
    rec = _inert_class("numpy.ndarray")()
    rec.args = args
    return rec


# ---------------------------------------------------------------------- safe tensor rebuild
def _load_storage(data: Any) -> Any:
    """Replaces ``torch.storage._load_from_bytes`` (a full, unsafe ``torch.load``)."""
    if not isinstance(data, bytes | bytearray):
        raise AdaPickleError("storage payload is not bytes")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = torch.load(io.BytesIO(bytes(data)), map_location="cpu", weights_only=True)
    if not isinstance(out, torch.TypedStorage | torch.UntypedStorage):
        raise AdaPickleError(f"storage payload decoded to {type(out).__name__}")
    return out


def _is_int_seq(x: Any) -> bool:
    return isinstance(x, tuple | list) and all(isinstance(v, int) for v in x)


def _rebuild_tensor_v2(storage: Any, storage_offset: Any, size: Any, stride: Any,
                       requires_grad: Any = False, backward_hooks: Any = None,
                       metadata: Any = None) -> Tensor:
    if not isinstance(storage, torch.TypedStorage | torch.UntypedStorage):
        raise AdaPickleError("tensor without a storage in the pickle")
    if not (isinstance(storage_offset, int) and _is_int_seq(size) and _is_int_seq(stride)):
        raise AdaPickleError("malformed tensor in the pickle")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch._utils._rebuild_tensor_v2(
            storage, storage_offset, tuple(size), tuple(stride), False, collections.OrderedDict()
        )


def _rebuild_tensor(storage: Any, storage_offset: Any, size: Any, stride: Any) -> Tensor:
    return _rebuild_tensor_v2(storage, storage_offset, size, stride)


def _rebuild_parameter(data: Any, requires_grad: Any = False, backward_hooks: Any = None,
                       state: Any = None) -> Tensor:
    if not isinstance(data, Tensor):
        raise AdaPickleError("parameter without tensor data in the pickle")
    return data.detach()


_TENSOR_REBUILDERS = {_rebuild_tensor_v2, _rebuild_tensor, _rebuild_parameter}


def _rebuild_from_type_v2(func: Any, new_type: Any, args: Any, state: Any) -> Tensor:
    if func not in _TENSOR_REBUILDERS or not isinstance(args, tuple):
        raise AdaPickleError("unexpected tensor subclass rebuild in the pickle")
    return func(*args)


_SAFE_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "dict"): dict,
    ("builtins", "list"): list,
    ("builtins", "tuple"): tuple,
    ("builtins", "slice"): slice,
    ("builtins", "bytearray"): bytearray,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    ("torch.storage", "_load_from_bytes"): _load_storage,
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent,
    ("dnnlib.util", "EasyDict"): InertDict,
    ("dnnlib", "EasyDict"): InertDict,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy", "dtype"): _inert_class("numpy.dtype"),
    ("numpy", "ndarray"): _inert_class("numpy.ndarray"),
}
_INERT_PACKAGES = ("training", "torch_utils", "dnnlib")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class SafeAdaUnpickler(pickle.Unpickler):
    """A ``pickle.Unpickler`` that resolves only the allow-list above; see the module docstring."""

    def find_class(self, module: str, name: str) -> Any:
        key = (module, name)
        if key in _SAFE_GLOBALS:
            return _SAFE_GLOBALS[key]
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        if (
            _IDENT.match(module)
            and _IDENT.match(name)
            and module.split(".", 1)[0] in _INERT_PACKAGES
        ):
            return _inert_class(f"{module}.{name}")
        raise AdaPickleError(
            f"refusing to load global {module}.{name}: not part of a StyleGAN2-ADA snapshot"
        )

    def persistent_load(self, pid: Any) -> Any:
        raise AdaPickleError("unexpected persistent id in the pickle (not an ada snapshot?)")


def read_ada_pickle(source: str | os.PathLike[str] | bytes | IO[bytes]) -> Any:
    """Unpickle an ada snapshot with :class:`SafeAdaUnpickler` (module objects come back inert)."""
    name = "<bytes>" if isinstance(source, bytes) else getattr(source, "name", None)
    if isinstance(source, str | os.PathLike):
        name = os.fspath(source)
        with open(name, "rb") as f:
            data = f.read()
    elif isinstance(source, bytes):
        data = source
    else:
        data = source.read()
    if data[:2] == b"PK":
        raise AdaPickleError(
            f"{name}: this is a torch.save zip checkpoint, not an ada .pkl (try load_rosinality)"
        )
    try:
        return SafeAdaUnpickler(io.BytesIO(data)).load()
    except AdaPickleError as e:
        raise AdaPickleError(f"{name}: {e}") from None
    except Exception as e:  # a parse boundary: whatever the bytes trip, report it as ours
        raise AdaPickleError(f"{name}: not a readable StyleGAN2-ADA pickle ({e})") from e


# ---------------------------------------------------------------------- tree -> state dict
_ADA_CLASSES = {"Generator", "MappingNetwork", "SynthesisNetwork", "SynthesisBlock",
                "SynthesisLayer", "ToRGBLayer", "FullyConnectedLayer", "Conv2dLayer"}


def _module_dict(obj: Any, path: str) -> dict[str, Any]:
    state = obj.state if isinstance(obj, InertObject) else None
    if not isinstance(state, Mapping):
        raise AdaPickleError(f"{path or 'G_ema'} is not a pickled torch module")
    return dict(state)


def ada_module_state_dict(root: Any) -> tuple[dict[str, Tensor], dict[str, dict[str, Any]]]:
    """Flatten a recorded module tree: ``(state dict, {module path: recorded attributes})``.

    The attributes dict also carries each module's ``class_name`` under ``"__class__"``.
    """
    tensors: dict[str, Tensor] = {}
    attrs: dict[str, dict[str, Any]] = {}

    def walk(obj: Any, prefix: str, depth: int) -> None:
        if depth > 16:
            raise AdaPickleError("module tree too deep")
        state = _module_dict(obj, prefix.rstrip("."))
        attrs[prefix.rstrip(".")] = {"__class__": obj.class_name, **{
            k: v for k, v in state.items() if not k.startswith("_")}}
        for group in ("_parameters", "_buffers"):
            for k, v in (state.get(group) or {}).items():
                if v is None:
                    continue
                if not isinstance(v, Tensor):
                    raise AdaPickleError(f"{prefix}{k} is not a tensor")
                tensors[prefix + k] = v
        for k, sub in (state.get("_modules") or {}).items():
            if sub is not None:
                walk(sub, f"{prefix}{k}.", depth + 1)

    walk(root, "", 0)
    return tensors, attrs


_STD_FILTER = torch.tensor([1.0, 3.0, 3.0, 1.0])
_STD_FILTER = torch.outer(_STD_FILTER, _STD_FILTER) / 64.0


def _gain(attrs: Mapping[str, dict[str, Any]], path: str, default: float) -> float:
    g = attrs.get(path, {}).get("bias_gain", default)
    return float(g) if isinstance(g, int | float) else default


def convert_ada_state_dict(
    sd: Mapping[str, Tensor],
    attrs: Mapping[str, dict[str, Any]] | None = None,
    name: str = "<ada>",
) -> tuple[dict[str, Tensor], Tensor | None, dict[str, Any]]:
    """ada ``G_ema`` state dict -> ``(rosinality state dict, w_avg or None, Generator kwargs)``.

    The returned state dict lacks only the blur/upsample kernel buffers, which are constants of
    the rosinality layout (:func:`load_stylegan2_ada` fills them from a fresh ``Generator``).
    """
    attrs = attrs or {}
    for path, a in attrs.items():
        cls = a.get("__class__")
        if cls not in _ADA_CLASSES:
            raise AdaPickleError(
                f"{name}: module {path or 'G_ema'} is a {cls!r}; only StyleGAN2(-ADA) generators "
                f"(mapping + skip synthesis) are supported"
            )
        if a.get("architecture", "skip") != "skip":
            raise AdaPickleError(
                f"{name}: {path} uses architecture {a['architecture']!r}; only 'skip' converts"
            )
    if isinstance(attrs.get("", {}).get("c_dim"), int) and attrs[""]["c_dim"] != 0:
        raise AdaPickleError(f"{name}: conditional generators (c_dim > 0) are not supported")

    src = dict(sd)
    out: dict[str, Tensor] = {}

    def take(key: str) -> Tensor:
        if key not in src:
            raise AdaPickleError(f"{name}: missing {key}; not a StyleGAN2-ADA generator")
        return src.pop(key).float()

    # mapping
    n_mlp = 0
    while f"mapping.fc{n_mlp}.weight" in src:
        n_mlp += 1
    if n_mlp == 0:
        raise AdaPickleError(f"{name}: no mapping.fc0 layer; not a StyleGAN2-ADA generator")
    style_dim = int(src["mapping.fc0.weight"].shape[1])
    lr_mlp = 0.01
    for i in range(n_mlp):
        w, b = take(f"mapping.fc{i}.weight"), take(f"mapping.fc{i}.bias")
        if tuple(w.shape) != (style_dim, style_dim):
            raise AdaPickleError(
                f"{name}: mapping.fc{i} is {tuple(w.shape)}; rosinality needs z_dim == w_dim "
                f"== layer width ({style_dim})"
            )
        lr = _gain(attrs, f"mapping.fc{i}", lr_mlp)
        out[f"style.{i + 1}.weight"] = w * (lr / lr_mlp)
        out[f"style.{i + 1}.bias"] = b * (lr / lr_mlp)
    w_avg = src.pop("mapping.w_avg").float().reshape(-1) if "mapping.w_avg" in src else None

    # synthesis
    res_list = sorted(int(m.group(1)) for k in src
                      if (m := re.match(r"synthesis\.b(\d+)\.conv1\.weight$", k)))
    if not res_list or res_list[0] != 4 or res_list != [2 ** (i + 2) for i in range(len(res_list))]:
        raise AdaPickleError(f"{name}: synthesis blocks {res_list} are not 4, 8, ..., size")
    size = res_list[-1]
    channels = {r: int(src[f"synthesis.b{r}.conv1.weight"].shape[0]) for r in res_list}

    for key in [k for k in src if k.endswith("resample_filter")]:
        f = src.pop(key).float()
        if f.shape != _STD_FILTER.shape or not torch.allclose(f, _STD_FILTER, atol=1e-6):
            raise AdaPickleError(f"{name}: {key} is not the [1,3,3,1] filter rosinality uses")

    def layer(ada: str, ros: str, noise_idx: int, res: int) -> None:
        out[f"{ros}.conv.weight"] = take(f"{ada}.weight").unsqueeze(0)
        lr = _gain(attrs, f"{ada}.affine", 1.0)
        out[f"{ros}.conv.modulation.weight"] = take(f"{ada}.affine.weight") * lr
        out[f"{ros}.conv.modulation.bias"] = take(f"{ada}.affine.bias") * lr
        out[f"{ros}.activate.bias"] = take(f"{ada}.bias")
        if f"{ada}.noise_strength" in src:
            out[f"{ros}.noise.weight"] = take(f"{ada}.noise_strength").reshape(1)
            out[f"noises.noise_{noise_idx}"] = take(f"{ada}.noise_const").reshape(1, 1, res, res)
        else:  # use_noise=False: no noise at all
            out[f"{ros}.noise.weight"] = torch.zeros(1)
            out[f"noises.noise_{noise_idx}"] = torch.zeros(1, 1, res, res)

    def torgb(ada: str, ros: str) -> None:
        w = take(f"{ada}.weight")
        if w.shape[0] != 3 or w.shape[2:] != (1, 1):
            raise AdaPickleError(f"{name}: {ada} is {tuple(w.shape)}; need 3 channels, 1x1")
        out[f"{ros}.conv.weight"] = w.unsqueeze(0)
        lr = _gain(attrs, f"{ada}.affine", 1.0)
        out[f"{ros}.conv.modulation.weight"] = take(f"{ada}.affine.weight") * lr
        out[f"{ros}.conv.modulation.bias"] = take(f"{ada}.affine.bias") * lr
        out[f"{ros}.bias"] = take(f"{ada}.bias").reshape(1, 3, 1, 1)

    out["input.input"] = take("synthesis.b4.const").unsqueeze(0)
    layer("synthesis.b4.conv1", "conv1", 0, 4)
    torgb("synthesis.b4.torgb", "to_rgb1")
    for k, r in enumerate(res_list[1:]):
        layer(f"synthesis.b{r}.conv0", f"convs.{2 * k}", 2 * k + 1, r)
        layer(f"synthesis.b{r}.conv1", f"convs.{2 * k + 1}", 2 * k + 2, r)
        torgb(f"synthesis.b{r}.torgb", f"to_rgbs.{k}")

    if src:
        left = sorted(src)
        raise AdaPickleError(
            f"{name}: {len(left)} tensor(s) have no rosinality counterpart (first: "
            f"{', '.join(left[:5])}); unsupported generator variant"
        )
    cfg = {"size": size, "style_dim": style_dim, "n_mlp": n_mlp, "channels": channels}
    return out, w_avg, cfg


def _top_generator(data: Any, key: str, name: str) -> Any:
    if isinstance(data, Mapping):
        if key not in data:
            raise AdaPickleError(f"{name}: no {key!r} entry (found {', '.join(map(str, data))})")
        data = data[key]
    if not isinstance(data, InertObject) or data.class_name != "Generator":
        raise AdaPickleError(f"{name}: {key} is not a StyleGAN2-ADA Generator")
    return data


def load_stylegan2_ada(
    source: str | os.PathLike[str] | bytes | IO[bytes],
    *,
    key: str = "G_ema",
    map_location: str | torch.device = "cpu",
) -> tuple[Generator, Tensor]:
    """Load ``G_ema`` from an ada ``.pkl`` into a rosinality-layout :class:`Generator`.

    Returns ``(generator in eval mode, latent_avg [style_dim])``; ``latent_avg`` is ada's
    ``mapping.w_avg``, or, if absent, the mean of 10,000 mapped z with seed 0 (as
    ``load_rosinality`` does). Nothing from the pickle is executed (see the module docstring).
    """
    name = os.fspath(source) if isinstance(source, str | os.PathLike) else "<ada pickle>"
    root = _top_generator(read_ada_pickle(source), key, name)
    sd, attrs = ada_module_state_dict(root)
    ros_sd, w_avg, cfg = convert_ada_state_dict(sd, attrs, name)
    with torch.random.fork_rng(devices=[]):  # the random init is overwritten: leave the RNG be
        g = Generator(cfg["size"], style_dim=cfg["style_dim"], n_mlp=cfg["n_mlp"],
                      channels=cfg["channels"])
    model_sd = g.state_dict()
    for k, v in model_sd.items():
        if k.endswith(".kernel"):
            ros_sd[k] = v
    _check_layout(model_sd, ros_sd, name, "the converted rosinality Generator")
    g.load_state_dict(ros_sd, strict=True)
    g = g.to(map_location).eval()
    if w_avg is None:
        w_avg = g.mean_latent(MEAN_LATENT_SAMPLES, seed=MEAN_LATENT_SEED)[0]
    w_avg = w_avg.to(g.input.input.device)
    g.latent_avg = w_avg
    return g, w_avg


def convert_ada_pkl(
    pkl: str | os.PathLike[str], out_path: str | os.PathLike[str], *, key: str = "G_ema"
) -> tuple[int, int]:
    """Convert an ada ``.pkl`` into a rosinality ``{"g_ema", "latent_avg"}`` checkpoint.

    Returns ``(size, parameter count)`` of the written generator.
    """
    g, avg = load_stylegan2_ada(pkl, key=key)
    save_rosinality(g, out_path, avg)
    return g.size, sum(p.numel() for p in g.parameters())
