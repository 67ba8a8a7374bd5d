"""``wordbrush precompute global-directions | feu``: the direction methods' artefacts.

* ``global_directions.pt``: StyleCLIP's channel relevances. For every style channel of the
  generator's convolutions (ToRGB layers excluded), ``n_images`` mapped latents are rendered
  with that channel moved by +/- ``alpha_probe`` standard deviations; the mean difference of
  the CLIP image embeddings, normalised, is the channel's row of ``fs3``. Standard
  deviations come from ``n_stats`` mapped latents.
* ``feu_corpus.pt``: CLIP image embeddings of a corpus of the pack's world (rendered frames
  of the train split), the images StyleCLIP-FEU retrieves positives and negatives from.

Both are written into the pack folder and named in its manifest's ``components``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from engine.packs import MANIFEST_NAME

__all__ = ["precompute_feu_corpus", "precompute_global_directions", "register_component"]


def register_component(folder: Path, name: str, file: str, **extra: Any) -> None:
    path = folder / MANIFEST_NAME
    data = json.loads(path.read_text(encoding="utf-8"))
    data.setdefault("components", {})[name] = {"file": file, **extra}
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


@torch.no_grad()
def precompute_global_directions(pack: Any, n_images: int = 32, alpha_probe: float = 5.0,
                                 n_stats: int = 4000, batch: int = 256, seed: int = 0,
                                 progress: bool = True) -> Path:
    gen, clip = pack.get("generator"), pack.get("clip")
    dev = gen.input.input.device
    g = torch.Generator().manual_seed(seed)
    stats = gen.styles(gen.mapping(torch.randn(n_stats, gen.style_dim, generator=g).to(dev)))
    std = [s.std(0) for s in stats]
    base = gen.styles(gen.mapping(torch.randn(n_images, gen.style_dim, generator=g).to(dev)))
    conv_layers = [lay.index for lay in gen.style_layers if not lay.is_rgb]
    rows, layers, channels, stds = [], [], [], []
    total = sum(gen.style_layers[i].channels for i in conv_layers)
    per_batch = max(1, batch // (2 * n_images))
    bar = tqdm(total=total, desc="global directions", unit="channel", disable=not progress)
    for li in conv_layers:
        width = gen.style_layers[li].channels
        for c0 in range(0, width, per_batch):
            cs = list(range(c0, min(width, c0 + per_batch)))
            m = len(cs)
            styles = [s.repeat(2 * m, 1) for s in base]
            for k, c in enumerate(cs):
                d = alpha_probe * std[li][c]
                styles[li][(2 * k) * n_images:(2 * k + 1) * n_images, c] += d
                styles[li][(2 * k + 1) * n_images:(2 * k + 2) * n_images, c] -= d
            images = gen.synthesis_from_styles(styles, noise="fixed").clamp(-1, 1)
            emb = clip.encode_image(images, differentiable=False).view(m, 2, n_images, -1)
            diff = (emb[:, 0] - emb[:, 1]).mean(1)
            rows.append(diff / diff.norm(dim=-1, keepdim=True).clamp_min(1e-8))
            layers += [li] * m
            channels += cs
            stds += [float(std[li][c]) for c in cs]
            bar.update(m)
    bar.close()
    out = Path(pack.manifest.root) / "global_directions.pt"
    torch.save({"fs3": torch.cat(rows).half().cpu(), "layers": torch.tensor(layers),
                "channels": torch.tensor(channels), "std": torch.tensor(stds),
                "alpha_probe": alpha_probe, "n_images": n_images}, out)
    register_component(Path(pack.manifest.root), "global_directions", out.name,
                       format="wordbrush-global-directions")
    return out


@torch.no_grad()
def precompute_feu_corpus(pack: Any, n_images: int = 4000, batch: int = 250,
                          progress: bool = True) -> Path:
    from engine.training.data import FrameSource

    clip = pack.get("clip")
    spec_data = pack.manifest.data.get("world")
    from engine.world import WORLD_SPEC, WorldSpec

    spec = WorldSpec.from_dict(spec_data) if spec_data else WORLD_SPEC
    source = FrameSource(spec, size=pack.resolution, hard_fraction=0.2, crop_fraction=0.0,
                         seed_offset=60_000_000)
    embs = []
    for i in tqdm(range(0, n_images, batch), desc="FEU corpus", disable=not progress):
        b = source.batch(i // batch, min(batch, n_images - i))
        embs.append(clip.encode_image(b.images, differentiable=False).cpu())
    out = Path(pack.manifest.root) / "feu_corpus.pt"
    torch.save({"embeddings": torch.cat(embs).half(), "source": "world renderer, train split"},
               out)
    register_component(Path(pack.manifest.root), "feu_corpus", out.name,
                       format="wordbrush-feu-corpus")
    return out
