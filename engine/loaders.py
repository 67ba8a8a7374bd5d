"""How each component of a pack is loaded from the files its manifest names.

Every loader reads with ``torch.load(weights_only=True)`` (inside the model modules) and
loads strictly into the official layouts. Loaded models are frozen and in eval mode;
each carries its average latent as a non-persistent buffer (so the state-dict layout
stays official): ``generator.latent_avg`` [style_dim] and ``encoder.latent_avg``
[n_styles, style_dim].
"""

from __future__ import annotations

from typing import Any

import torch

from .packs import Manifest, PackError, component_loader


def _freeze(module: torch.nn.Module, device: Any) -> torch.nn.Module:
    module.eval().requires_grad_(False)
    return module.to(device)


@component_loader("generator")
def load_generator(manifest: Manifest, device: Any) -> torch.nn.Module:
    from .models.stylegan2 import load_rosinality

    spec = manifest.component_spec("generator") or {}
    path = manifest.file("generator")
    arch = {k: spec[k] for k in ("size", "style_dim", "n_mlp", "channel_multiplier")
            if k in spec}
    if "channels" in spec:
        arch["channels"] = {int(k): int(v) for k, v in spec["channels"].items()}
    generator, latent_avg = load_rosinality(path, **arch)
    if generator.size != manifest.resolution:
        raise PackError(f"pack {manifest.name!r}: the generator renders {generator.size}px but "
                        f"the manifest says resolution {manifest.resolution}")
    # a non-persistent buffer follows .to(device) and keeps the state dict official
    if "latent_avg" in generator.__dict__:
        del generator.__dict__["latent_avg"]
    generator.register_buffer("latent_avg", latent_avg.float().reshape(-1), persistent=False)
    return _freeze(generator, device)


@component_loader("encoder")
def load_encoder(manifest: Manifest, device: Any) -> torch.nn.Module:
    from .models.e4e import E4EConfig, load_e4e

    spec = manifest.component_spec("encoder") or {}
    config = E4EConfig.from_dict(spec["config"]) if "config" in spec else None
    encoder, latent_avg, _opts = load_e4e(manifest.file("encoder"), config=config)
    if latent_avg is None:
        raise PackError(f"pack {manifest.name!r}: {manifest.file('encoder').name} has no "
                        "latent_avg (official e4e checkpoints carry one; re-save it with it)")
    encoder.register_buffer("latent_avg", latent_avg.float(), persistent=False)
    return _freeze(encoder, device)


@component_loader("clip")
def load_clip(manifest: Manifest, device: Any) -> Any:
    from .models.clip import create_clip

    spec = manifest.component_spec("clip") or {}
    weights = manifest.file("clip") if spec.get("file") else None
    if weights is None and not spec.get("random"):
        raise PackError(f"pack {manifest.name!r} names no CLIP weights file: an untrained "
                        "CLIP edits towards nothing (name the file as clip.file, or say "
                        "\"random\": true for a test pack)")
    if "config" in spec:
        clip = create_clip(config=spec["config"], weights=weights, device=device,
                           tokenizer_name=spec.get("tokenizer"))
    else:
        clip = create_clip(spec.get("model", "ViT-B-32"), weights=weights, device=device,
                           tokenizer_name=spec.get("tokenizer"))
    return clip


def generic_loader(component: str) -> Any:
    """Optional artefacts (method files): a weights-only tensor file, loaded as it is."""

    def load(manifest: Manifest, device: Any) -> Any:
        path = manifest.file(component)
        try:
            return torch.load(path, map_location=device, weights_only=True)
        except FileNotFoundError:
            raise
        except Exception as exc:
            raise PackError(f"pack {manifest.name!r}: {path.name} is not a weights-only torch "
                            f"file ({exc})") from None

    return load


@component_loader("clipinverter")
def load_clipinverter_file(manifest: Manifest, device: Any) -> Any:
    """CLIPInverter's checkpoint as the method builds its networks from it: on the CPU
    (the networks go to the pack's device when built) and only what they read, since the
    official files also carry a whole generator, which would stay in memory for good."""
    from .models.clipinverter import ADAPTER_PREFIX, OLD_ADAPTER_PREFIX, REMAPPER_PREFIXES

    ckpt = generic_loader("clipinverter")(manifest, "cpu")
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict", ckpt), dict):
        return ckpt  # refused, with the reason, when the networks are built
    state = ckpt.get("state_dict", ckpt)
    read = (ADAPTER_PREFIX, *REMAPPER_PREFIXES, OLD_ADAPTER_PREFIX)  # the old one: refused
    return {"state_dict": {k: v for k, v in state.items() if k.startswith(read)},
            "opts": ckpt.get("opts") or {}}


@component_loader("judge")
def load_judge_component(manifest: Manifest, device: Any) -> torch.nn.Module:
    """The pack's evaluation classifier (``engine/models/judge.py``)."""
    from .models.judge import load_judge

    path = manifest.file("judge")
    try:
        return load_judge(path, device=device)
    except FileNotFoundError:
        raise PackError(f"pack {manifest.name!r}: {path} does not exist") from None
    except (ValueError, RuntimeError, KeyError) as exc:
        raise PackError(f"pack {manifest.name!r}: {path.name}: {exc}") from None
