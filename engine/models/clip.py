"""OpenCLIP wrapper for CLIP guidance: offline construction, strict local weights, and
differentiable image preprocessing.

Nothing here downloads.  Models come from open_clip's own factory (a built-in config name
such as ``"ViT-B-32"``, or a ``local-dir:PATH`` folder holding ``open_clip_config.json``
and ``open_clip_pytorch_model.bin`` / ``.safetensors``) or from open_clip's model classes
for a config dict (e.g. :data:`TINY_CLIP_CONFIG`).  Weights only ever come from local
files, read with ``torch.load(weights_only=True)`` (or safetensors) and loaded strictly.

Tokenizers are open_clip's, cut to the model's ``context_length``.  open_clip's
``SimpleTokenizer`` truncates by keeping the first ``context_length - 1`` tokens and
writing EOT (id 49407, the largest id) last, so the text tower's argmax pooling still
finds the EOT position for long prompts (checked in ``tests/test_clip.py``).
"""

from __future__ import annotations

import copy
import importlib.util
import json
import logging
import pickle
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import open_clip
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layout import layout_differences, summarise_differences

__all__ = [
    "TINY_CLIP_CONFIG",
    "ClipModel",
    "create_clip",
    "load_clip_weights",
    "save_clip",
    "save_clip_local_dir",
]

#: The demo pack's tiny CLIP (7.5 M parameters, 6.3 M of them the token embedding).
TINY_CLIP_CONFIG: dict[str, Any] = {
    "embed_dim": 64,
    "vision_cfg": {
        "image_size": 64,
        "layers": 4,
        "width": 128,
        "patch_size": 8,
        "head_width": 32,
        "mlp_ratio": 2.0,
    },
    "text_cfg": {
        "context_length": 24,
        "vocab_size": 49408,
        "width": 128,
        "heads": 4,
        "layers": 3,
    },
}

#: Tokenizer used for config-dict models (open_clip's BPE ``SimpleTokenizer``, offline).
DEFAULT_TOKENIZER = "ViT-B-32"
LOCAL_DIR_CONFIG = "open_clip_config.json"
_SAFETENSORS_NAMES = ("open_clip_model.safetensors", "open_clip_pytorch_model.safetensors")
_TORCH_NAMES = ("open_clip_pytorch_model.bin", "open_clip_pytorch_model.pth")


def _safetensors_available() -> bool:
    return importlib.util.find_spec("safetensors") is not None


class ClipModel(nn.Module):
    """A frozen-by-default open_clip model with normalised text / image embeddings.

    * :meth:`encode_text` tokenizes, encodes under ``no_grad`` and caches each string
      (LRU); text embeddings are constants for guidance.  The cache is cleared on
      ``.to()`` and by :meth:`clear_cache` (call it after changing text weights).
    * :meth:`encode_image` takes images in [-1, 1] (the generator's range) and does the
      whole CLIP preprocessing on tensors, so gradients reach the pixels.
    """

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Any,
        *,
        model_cfg: Mapping[str, Any],
        mean: Sequence[float] = open_clip.OPENAI_DATASET_MEAN,
        std: Sequence[float] = open_clip.OPENAI_DATASET_STD,
        resize_mode: str = "shortest",
        prompt_templates: Sequence[str] = ("{}",),
        text_cache_size: int = 1024,
    ) -> None:
        super().__init__()
        self.model = model
        self.tokenizer = tokenizer
        self.model_cfg: dict[str, Any] = copy.deepcopy(dict(model_cfg))
        self.register_buffer(
            "mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False
        )
        self.register_buffer(
            "std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False
        )
        self.resize_mode = resize_mode
        self.prompt_templates: tuple[str, ...] = tuple(prompt_templates)
        self.text_cache_size = text_cache_size
        self._text_cache: OrderedDict[str, Tensor] = OrderedDict()
        size = getattr(model.visual, "image_size", None) or model_cfg["vision_cfg"]["image_size"]
        self.image_hw: tuple[int, int] = (
            (int(size[0]), int(size[1])) if isinstance(size, Sequence) else (int(size),) * 2
        )

    # -- properties ------------------------------------------------------------------------
    @property
    def image_size(self) -> int:
        """Side of the (square) model input; see ``image_hw`` for non-square towers."""
        return self.image_hw[0]

    @property
    def embed_dim(self) -> int:
        return int(self.model_cfg["embed_dim"])

    @property
    def context_length(self) -> int:
        text = getattr(self.model, "text", self.model)
        return int(text.context_length)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    # -- text ------------------------------------------------------------------------------
    def clear_cache(self) -> None:
        self._text_cache.clear()

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> ClipModel:
        self.clear_cache()  # cached tensors live on the old device / dtype
        return super()._apply(fn, *args, **kwargs)

    def tokenize(self, texts: Sequence[str]) -> Tensor:
        return self.tokenizer(list(texts), context_length=self.context_length)

    def encode_text(self, texts: str | Sequence[str]) -> Tensor:
        """``[N, embed_dim]`` L2-normalised text embeddings (no gradient, cached per string)."""
        if isinstance(texts, str):
            texts = [texts]
        todo = list(dict.fromkeys(t for t in texts if t not in self._text_cache))
        if todo:
            tokens = self.tokenize(todo).to(self.device)
            with torch.no_grad():
                emb = F.normalize(self.model.encode_text(tokens).float(), dim=-1)
            for t, e in zip(todo, emb, strict=True):
                self._text_cache[t] = e.clone()
        out = []
        for t in texts:
            self._text_cache.move_to_end(t)
            out.append(self._text_cache[t])
        while len(self._text_cache) > self.text_cache_size:
            self._text_cache.popitem(last=False)
        if not out:
            return torch.empty(0, self.embed_dim, device=self.device)
        return torch.stack(out)

    def encode_prompt(
        self, prompt: str | Sequence[str], templates: Sequence[str] | None = None
    ) -> Tensor:
        """Prompt-ensembled embedding: mean over templates (each with a ``{}``) of the
        normalised text embeddings, renormalised.  ``[embed_dim]`` for a string,
        ``[N, embed_dim]`` for a list.  ``templates`` defaults to ``self.prompt_templates``.
        """
        tpl = tuple(templates) if templates is not None else self.prompt_templates
        if not tpl or any("{}" not in t for t in tpl):
            raise ValueError(f"templates must be non-empty and each contain '{{}}': {tpl!r}")
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        embs = []
        for p in prompts:
            e = self.encode_text([t.format(p) for t in tpl]).mean(0)
            embs.append(F.normalize(e, dim=-1))
        out = torch.stack(embs) if embs else torch.empty(0, self.embed_dim, device=self.device)
        return out[0] if isinstance(prompt, str) else out

    # -- images ----------------------------------------------------------------------------
    def preprocess(self, images: Tensor) -> Tensor:
        """Differentiable CLIP preprocessing of ``[N, C, H, W]`` images in [-1, 1].

        Resizes with antialiased bilinear interpolation ("shortest": shorter side to the
        model size, then centre crop, as open_clip's default transform; "squash": straight
        to the model size), maps to [0, 1] and normalises with the model's mean / std.
        """
        x = images.unsqueeze(0) if images.dim() == 3 else images
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"expected [N, 3, H, W] images, got {tuple(images.shape)}")
        x = x.to(device=self.device, dtype=self.mean.dtype)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        th, tw = self.image_hw
        h, w = x.shape[-2:]
        if (h, w) != (th, tw):
            if self.resize_mode == "squash":
                size = (th, tw)
            else:
                scale = max(th / h, tw / w)
                size = (max(th, round(h * scale)), max(tw, round(w * scale)))
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
            top, left = (x.shape[-2] - th) // 2, (x.shape[-1] - tw) // 2
            x = x[..., top : top + th, left : left + tw]
        x = (x + 1.0) * 0.5
        return (x - self.mean) / self.std

    @torch.no_grad()
    def text_features(self, texts: Sequence[str]) -> Tensor:
        """``[N, embed_dim]`` text features as the model outputs them, not normalised (what
        CLIPInverter's released networks were trained on: ``clip.encode_text``)."""
        return self.model.encode_text(self.tokenize(texts).to(self.device)).float()

    @torch.no_grad()
    def image_features(self, images: Tensor) -> Tensor:
        """``[N, embed_dim]`` image features of images in [-1, 1], not normalised."""
        return self.model.encode_image(self.preprocess(images).to(self.dtype)).float()

    def encode_image(self, images: Tensor, differentiable: bool = True) -> Tensor:
        """``[N, embed_dim]`` L2-normalised image embeddings of images in [-1, 1]."""
        with torch.set_grad_enabled(differentiable and torch.is_grad_enabled()):
            x = self.preprocess(images).to(self.dtype)
            return F.normalize(self.model.encode_image(x).float(), dim=-1)


# ------------------------------------------------------------------------------------------
# Weights
# ------------------------------------------------------------------------------------------
def _read_state_dict(src: str | Path | Mapping[str, Any]) -> dict[str, Tensor]:
    if isinstance(src, Mapping):
        sd: Any = src
    else:
        path = Path(src)
        if not path.is_file():
            raise FileNotFoundError(
                f"CLIP weights file not found: {path} (only local files are used; "
                "pretrained tags are never downloaded)"
            )
        if path.suffix == ".safetensors":
            if not _safetensors_available():
                raise ImportError(
                    f"{path} is a .safetensors file but the 'safetensors' package is not "
                    "installed; install it or provide a torch .bin/.pt file"
                )
            from safetensors.torch import load_file

            sd = load_file(str(path), device="cpu")
        else:
            try:
                sd = torch.load(path, map_location="cpu", weights_only=True)
            except pickle.UnpicklingError as exc:
                raise ValueError(
                    f"refusing to load CLIP weights {path}: the file pickles arbitrary Python "
                    "objects (torch.load(weights_only=True) failed); save a plain state dict. "
                    f"Loader said: {str(exc).splitlines()[0]}"
                ) from exc
    if isinstance(sd, Mapping) and isinstance(sd.get("state_dict"), Mapping):
        sd = sd["state_dict"]
    if not isinstance(sd, Mapping):
        raise ValueError(f"CLIP weights {src}: expected a state dict, got {type(sd).__name__}")
    if sd and all(str(k).startswith("module.") for k in sd):
        sd = {k[len("module.") :]: v for k, v in sd.items()}
    return dict(sd)


def load_clip_weights(model: nn.Module, src: str | Path | Mapping[str, Any]) -> None:
    """Strictly load an open_clip state dict (fp16 storage is cast to the model's dtype)."""
    if isinstance(model, ClipModel):
        model, clip = model.model, model
        clip.clear_cache()
    sd = _read_state_dict(src)
    differences = summarise_differences(*layout_differences(model.state_dict(), sd))
    if differences:
        where = "<in-memory state dict>" if isinstance(src, Mapping) else str(src)
        raise ValueError("; ".join([f"CLIP weights {where} do not match the model",
                                    *differences]))
    model.load_state_dict(sd, strict=True)


def save_clip(model: nn.Module, path: str | Path, half: bool = False) -> None:
    """Write the open_clip state dict (``.safetensors`` suffix -> safetensors, else torch)."""
    inner = model.model if isinstance(model, ClipModel) else model
    sd = {
        k: (v.detach().cpu().half() if half and v.is_floating_point() else v.detach().cpu())
        .contiguous()
        .clone()
        for k, v in inner.state_dict().items()
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".safetensors":
        if not _safetensors_available():
            raise ImportError("saving .safetensors needs the 'safetensors' package")
        from safetensors.torch import save_file

        save_file(sd, str(path))
    else:
        tmp = path.with_name(path.name + ".tmp")
        torch.save(sd, tmp)
        tmp.replace(path)


def save_clip_local_dir(
    model: ClipModel, folder: str | Path, *, half: bool = False, safetensors: bool = False
) -> Path:
    """Write an open_clip ``local-dir:`` folder (config JSON + weights); returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cfg = {
        "model_cfg": model.model_cfg,
        "preprocess_cfg": {
            "mean": [float(v) for v in model.mean.flatten()],
            "std": [float(v) for v in model.std.flatten()],
            "resize_mode": model.resize_mode,
        },
    }
    (folder / LOCAL_DIR_CONFIG).write_text(json.dumps(cfg, indent=2))
    name = _SAFETENSORS_NAMES[1] if safetensors else _TORCH_NAMES[0]
    save_clip(model, folder / name, half=half)
    return folder


# ------------------------------------------------------------------------------------------
# Construction
# ------------------------------------------------------------------------------------------
def _refuse_downloads(cfg: Mapping[str, Any], what: str) -> None:
    text_cfg = cfg.get("text_cfg", {}) or {}
    for key in ("hf_model_name", "hf_tokenizer_name"):
        if text_cfg.get(key):
            raise ValueError(
                f"{what}: text_cfg.{key}={text_cfg[key]!r} needs Hugging Face files, which are "
                "never downloaded here; use a model with open_clip's built-in text tower"
            )


def _model_from_config(cfg: Mapping[str, Any]) -> nn.Module:
    cfg = copy.deepcopy(dict(cfg))
    custom_text = cfg.pop("custom_text", False)
    if "multimodal_cfg" in cfg:
        return open_clip.CoCa(**cfg)
    if custom_text:
        return open_clip.CustomTextCLIP(**cfg)
    return open_clip.CLIP(**cfg)


def _local_dir_weights(folder: Path) -> Path:
    st = [folder / n for n in _SAFETENSORS_NAMES if (folder / n).is_file()]
    pt = [folder / n for n in _TORCH_NAMES if (folder / n).is_file()]
    if st and _safetensors_available():
        return st[0]
    if pt:
        return pt[0]
    if st:
        raise ImportError(
            f"{folder} holds only {st[0].name}, but the 'safetensors' package is not installed; "
            f"install it or add {_TORCH_NAMES[0]}"
        )
    raise FileNotFoundError(
        f"no CLIP weights in {folder}: expected one of {_SAFETENSORS_NAMES + _TORCH_NAMES}"
    )


@contextmanager
def _without_log_records(prefix: str) -> Iterator[None]:
    """Drop the root logger's records whose message starts with ``prefix`` while inside."""

    def keep(record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(prefix)

    root = logging.getLogger()
    root.addFilter(keep)
    try:
        yield
    finally:
        root.removeFilter(keep)


def create_clip(
    model_name: str | None = None,
    *,
    config: Mapping[str, Any] | None = None,
    weights: str | Path | Mapping[str, Any] | None = None,
    device: str | torch.device = "cpu",
    tokenizer_name: str | None = None,
    prompt_templates: Sequence[str] = ("{}",),
    freeze: bool = True,
    text_cache_size: int = 1024,
) -> ClipModel:
    """Build a :class:`ClipModel` without touching the network.

    Args:
        model_name: an open_clip built-in config (``"ViT-B-32"``) or ``"local-dir:PATH"``
            (config + weights from that folder; ``.safetensors`` preferred when the package
            is installed).  ``hf-hub:`` names are refused.
        config: a model config dict for ``open_clip.CLIP`` (e.g. :data:`TINY_CLIP_CONFIG`),
            optionally wrapped as ``{"model_cfg": ..., "preprocess_cfg": ...}``.
        weights: local state-dict file (``.pt``/``.bin``/``.safetensors``; ``{"state_dict":
            ...}`` wrappers, ``module.`` prefixes and fp16 storage accepted) loaded strictly.
            Without weights (and outside ``local-dir:``) the model keeps its random init.
        tokenizer_name: open_clip tokenizer to use; defaults to the model name, or
            ``"ViT-B-32"`` (the CLIP BPE) for config dicts.
        freeze: eval mode and ``requires_grad=False`` on all weights (guidance only needs
            gradients w.r.t. the image).
    """
    if (model_name is None) == (config is None):
        raise ValueError("give exactly one of model_name or config")
    preprocess_cfg: dict[str, Any] = {}
    if config is not None:
        cfg = copy.deepcopy(dict(config))
        if "model_cfg" in cfg:
            preprocess_cfg = dict(cfg.get("preprocess_cfg") or {})
            cfg = dict(cfg["model_cfg"])
        preprocess_cfg.update(cfg.pop("preprocess_cfg", None) or {})
        _refuse_downloads(cfg, "config")
        model = _model_from_config(cfg)
        tok_name = tokenizer_name or DEFAULT_TOKENIZER
    else:
        assert model_name is not None
        if model_name.startswith("hf-hub:"):
            raise ValueError(f"{model_name}: hf-hub models are never downloaded here")
        if model_name.startswith("local-dir:"):
            folder = Path(model_name[len("local-dir:") :]).expanduser()
            cfg_path = folder / LOCAL_DIR_CONFIG
            if not cfg_path.is_file():
                raise FileNotFoundError(f"local-dir CLIP: {cfg_path} not found")
            local = json.loads(cfg_path.read_text())
            if "model_cfg" not in local:
                raise ValueError(f"{cfg_path} has no 'model_cfg' entry")
            cfg = dict(local["model_cfg"])
            _refuse_downloads(cfg, str(cfg_path))
            if weights is None:
                weights = _local_dir_weights(folder)
            model_name = f"local-dir:{folder}"
        else:
            found = open_clip.get_model_config(model_name)
            if found is None:
                raise ValueError(
                    f"unknown open_clip model config {model_name!r} "
                    f"(e.g. {', '.join(open_clip.list_models()[:5])}, ...)"
                )
            cfg = dict(found)
            _refuse_downloads(cfg, model_name)
        # open_clip's factory; never downloads: no pretrained tag, no default tower weights.
        # It warns "No pretrained weights loaded ... initialized randomly" for every model
        # made so, which would read as a broken pack: the weights are loaded just below.
        with _without_log_records("No pretrained weights loaded"):
            model = open_clip.create_model(
                model_name,
                pretrained=None,
                load_weights=False,
                pretrained_image=False,
                pretrained_text=False,
            )
        preprocess_cfg = dict(getattr(model.visual, "preprocess_cfg", None) or {})
        tok_name = tokenizer_name or model_name

    if weights is not None:
        load_clip_weights(model, weights)
    model = model.to(device)
    if freeze:
        model.eval().requires_grad_(False)

    text = getattr(model, "text", model)
    context_length = int(text.context_length)
    tokenizer = open_clip.get_tokenizer(tok_name, context_length=context_length)
    tok_vocab = getattr(tokenizer, "vocab_size", None)
    if tok_vocab is not None and tok_vocab > int(text.vocab_size):
        raise ValueError(
            f"tokenizer {tok_name!r} has {tok_vocab} tokens but the text tower only "
            f"{text.vocab_size}"
        )
    return ClipModel(
        model,
        tokenizer,
        model_cfg=cfg,
        mean=tuple(preprocess_cfg.get("mean", open_clip.OPENAI_DATASET_MEAN)),
        std=tuple(preprocess_cfg.get("std", open_clip.OPENAI_DATASET_STD)),
        resize_mode=str(preprocess_cfg.get("resize_mode", "shortest")),
        prompt_templates=prompt_templates,
        text_cache_size=text_cache_size,
    ).to(device)
