"""``wordbrush precompute global-directions | feu``: the direction methods' artefacts.

* ``global_directions.pt``: StyleCLIP's channel relevances. For every style channel of the
  generator's convolutions (ToRGB layers excluded), ``n_images`` mapped latents are rendered
  with that channel moved by +/- ``alpha_probe`` standard deviations; the mean difference of
  the CLIP image embeddings, normalised, is the channel's row of ``fs3``. Standard
  deviations come from ``n_stats`` mapped latents.
* ``feu_corpus.pt``: CLIP image embeddings of a corpus of the pack's images, the ones
  StyleCLIP-FEU retrieves positives and negatives from. A pack trained on a world of its
  own (its manifest has ``world``) takes rendered frames of that world's train split; any
  other pack (FFHQ from the official files) takes its own generator's samples, random z
  truncated as its manifest's ``sampling.truncation`` says, as the FEU paper does.

Both are written into the pack folder and named in its manifest's ``components``; for a
pack of this repository (the demo pack) into the user's data folder instead, where the
pack finds them (:func:`engine.packs.artefact_dir`), so a checkout stays clean. At full
size either runs for hours on a CPU (StyleCLIP's users report 4-24 h for global directions
on a GPU), so each prints its size and an estimate of its time before it starts, keeps its
work in a ``.partial`` file beside the pack every minute, and a second run with the same
settings continues from there.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm

from engine.packs import MANIFEST_NAME, OVERLAY_NAME, artefact_dir

__all__ = ["precompute_feu_corpus", "precompute_global_directions", "register_component",
           "render_batch", "sampling_truncation"]

#: how often the work done so far is written to the .partial file
SAVE_EVERY_S = 60.0
#: multiply-accumulates drawn in one batch of renders (Generator.synthesis_macs): the demo
#: pack draws 50 images at once on a CPU, a 1024 px generator one; a GPU 100 times more
CPU_RENDER_MACS = 10**10
GPU_RENDER_MACS = 10**12


def register_component(folder: Path, name: str, file: str, **extra: Any) -> None:
    """Name ``file`` (in ``folder``) as component ``name``: in the pack's manifest where
    ``folder`` is the pack's, else in the artefact folder's own list (a repository pack:
    :func:`engine.packs.artefact_dir`)."""
    if (folder / MANIFEST_NAME).is_file():
        path = folder / MANIFEST_NAME
        data = json.loads(path.read_text(encoding="utf-8"))
        data.setdefault("components", {})[name] = {"file": file, **extra}
    else:
        path = folder / OVERLAY_NAME
        data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
        data[name] = {"file": file, **extra}
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def render_batch(generator: Any, limit: int = 256) -> int:
    """How many images one synthesis call may draw on the generator's device."""
    device = generator.input.input.device
    budget = GPU_RENDER_MACS if device.type != "cpu" else CPU_RENDER_MACS
    return max(1, min(limit, budget // max(1, generator.synthesis_macs())))


def sampling_truncation(pack: Any) -> float:
    """The manifest's ``sampling.truncation`` (psi; 1.0 where it names none)."""
    sampling = pack.manifest.data.get("sampling") or {}
    psi = float(sampling.get("truncation", 1.0))
    if not 0.0 < psi <= 1.0:
        raise ValueError(f"pack {pack.name!r}: sampling.truncation must be in (0, 1], not {psi}")
    return psi


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@dataclass
class _Partial:
    """Work kept between runs: ``settings`` must match for a run to continue it."""

    path: Path
    settings: dict[str, Any]
    items: dict[str, list[Any]] = field(default_factory=dict)
    saved_at: float = field(default_factory=time.monotonic)

    @classmethod
    def open(cls, path: Path, settings: dict[str, Any], keys: tuple[str, ...],
             say: Callable[[str], None]) -> _Partial:
        partial = cls(path, settings, {k: [] for k in keys})
        if path.is_file():
            try:
                data = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as exc:  # a file cut short by a kill: start again
                say(f"{path.name} could not be read ({exc}); starting again")
                return partial
            if data.get("settings") == settings and set(data.get("items", {})) == set(keys):
                partial.items = {k: list(data["items"][k]) for k in keys}
            else:
                say(f"{path.name} was made with other settings; starting again")
        return partial

    def done(self, key: str) -> int:
        return len(self.items[key])

    def add(self, **values: list[Any]) -> None:
        for key, more in values.items():
            self.items[key].extend(more)
        if time.monotonic() - self.saved_at >= SAVE_EVERY_S:
            self.save()

    def save(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        torch.save({"settings": self.settings, "items": self.items}, tmp)
        tmp.replace(self.path)
        self.saved_at = time.monotonic()

    @contextmanager
    def keeping(self) -> Iterator[None]:
        """Saves the work done so far when the run stops early (Ctrl-C, an error), so that
        the next run continues from it."""
        try:
            yield
        except BaseException:
            self.save()
            raise

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def _seconds_per_render(generator: Any, clip: Any, styles: list[Tensor]) -> float:
    """One render and its CLIP embedding, timed after a warm-up (for the estimate)."""
    one = [s[:1] for s in styles]

    def run() -> None:
        image = generator.synthesis_from_styles(one, noise="fixed").clamp(-1, 1)
        clip.encode_image(image, differentiable=False)
        if image.device.type == "cuda":
            torch.cuda.synchronize(image.device)

    run()
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


@torch.no_grad()
def precompute_global_directions(pack: Any, n_images: int = 32, alpha_probe: float = 5.0,
                                 n_stats: int = 4000, batch: int | None = None, seed: int = 0,
                                 progress: bool = True,
                                 say: Callable[[str], None] = print) -> Path:
    """``batch``: images drawn in one synthesis call (default: :func:`render_batch`)."""
    gen, clip = pack.get("generator"), pack.get("clip")
    root = artefact_dir(Path(pack.manifest.root), pack.name)
    root.mkdir(parents=True, exist_ok=True)
    dev = gen.input.input.device
    g = torch.Generator().manual_seed(seed)
    stats = gen.styles(gen.mapping(torch.randn(n_stats, gen.style_dim, generator=g).to(dev)))
    std = [s.std(0) for s in stats]
    base = gen.styles(gen.mapping(torch.randn(n_images, gen.style_dim, generator=g).to(dev)))
    conv_layers = [lay.index for lay in gen.style_layers if not lay.is_rgb]
    todo = [(li, c) for li in conv_layers for c in range(gen.style_layers[li].channels)]
    images_at_once = batch or render_batch(gen)
    per_call = max(1, images_at_once // (2 * n_images))  # channels per synthesis call
    settings = {"n_images": n_images, "alpha_probe": alpha_probe, "n_stats": n_stats,
                "seed": seed, "channels": len(todo)}
    partial = _Partial.open(root / "global_directions.pt.partial", settings,
                            ("rows", "layers", "channels", "std"), say)
    done = partial.done("layers")
    renders = 2 * n_images * (len(todo) - done)
    if renders:
        per_render = _seconds_per_render(gen, clip, base)
        resumed = f", continuing after {done}" if done else ""
        say(f"global directions: {len(todo):,} style channels{resumed}, {renders:,} renders "
            f"at {gen.size} px; about {_duration(renders * per_render)} on {dev} "
            "(interrupt at any time; run again to continue)")
    bar = tqdm(total=len(todo), initial=done, desc="global directions", unit="channel",
               disable=not progress)
    with partial.keeping():
        for first in range(done, len(todo), per_call):
            chunk = todo[first:first + per_call]
            m = len(chunk)
            styles = [s.repeat(2 * m, 1) for s in base]
            for k, (li, c) in enumerate(chunk):
                d = alpha_probe * std[li][c]
                styles[li][(2 * k) * n_images:(2 * k + 1) * n_images, c] += d
                styles[li][(2 * k + 1) * n_images:(2 * k + 2) * n_images, c] -= d
            emb = torch.cat([
                clip.encode_image(gen.synthesis_from_styles([s[i:i + images_at_once]
                                                             for s in styles],
                                                            noise="fixed").clamp(-1, 1),
                                  differentiable=False)
                for i in range(0, 2 * m * n_images, images_at_once)]).view(m, 2, n_images, -1)
            diff = (emb[:, 0] - emb[:, 1]).mean(1)
            rows = diff / diff.norm(dim=-1, keepdim=True).clamp_min(1e-8)
            partial.add(rows=list(rows.half().cpu()), layers=[li for li, _ in chunk],
                        channels=[c for _, c in chunk],
                        std=[float(std[li][c]) for li, c in chunk])
            bar.update(m)
    bar.close()
    items = partial.items
    out = root / "global_directions.pt"
    torch.save({"fs3": torch.stack(items["rows"]).half(), "layers": torch.tensor(items["layers"]),
                "channels": torch.tensor(items["channels"]), "std": torch.tensor(items["std"]),
                "alpha_probe": alpha_probe, "n_images": n_images}, out)
    register_component(root, "global_directions", out.name,
                       format="wordbrush-global-directions")
    partial.remove()
    return out


def _world_frames(pack: Any) -> Callable[[int, int], Tensor]:
    """``frames(index, n)``: rendered frames of the pack's world (train split)."""
    from engine.training.data import FrameSource
    from engine.world import WorldSpec

    spec = WorldSpec.from_dict(pack.manifest.data["world"])
    source = FrameSource(spec, size=pack.resolution, hard_fraction=0.2, crop_fraction=0.0,
                         seed_offset=60_000_000)
    return lambda index, n: source.batch(index, n).images


def _generator_samples(pack: Any, seed: int) -> Callable[[int, int], Tensor]:
    """``frames(index, n)``: the generator's renders of random z (seeded by ``index``),
    truncated towards its average latent as the manifest says."""
    gen = pack.get("generator")
    dev = gen.input.input.device
    psi = sampling_truncation(pack)

    def frames(index: int, n: int) -> Tensor:
        z = torch.randn(n, gen.style_dim, generator=torch.Generator().manual_seed(
            seed * 1_000_003 + index)).to(dev)
        w = gen.truncate(gen.mapping(z), psi)
        return gen.synthesis(w, noise="fixed").clamp(-1, 1)

    return frames


@torch.no_grad()
def precompute_feu_corpus(pack: Any, n_images: int = 4000, batch: int | None = None,
                          seed: int = 0, progress: bool = True,
                          say: Callable[[str], None] = print) -> Path:
    """``batch``: frames made and embedded at once (default: 250 for a world; for
    generator samples :func:`render_batch`)."""
    clip = pack.get("clip")
    root = artefact_dir(Path(pack.manifest.root), pack.name)
    root.mkdir(parents=True, exist_ok=True)
    from_world = bool(pack.manifest.data.get("world"))
    if from_world:
        frames, source = _world_frames(pack), "world renderer, train split"
        batch = batch or 250
    else:
        gen = pack.get("generator")
        frames = _generator_samples(pack, seed)
        source = f"generator samples, truncation {sampling_truncation(pack):g}"
        batch = batch or render_batch(gen)
    settings = {"n_images": n_images, "batch": batch, "seed": seed, "source": source}
    partial = _Partial.open(root / "feu_corpus.pt.partial", settings, ("embeddings",), say)
    done = partial.done("embeddings")
    if done < n_images and not from_world:
        per_render = _seconds_per_render(gen, clip, gen.styles(gen.latent_avg[None]))
        resumed = f", continuing after {done}" if done else ""
        say(f"FEU corpus: {n_images:,} samples of the generator{resumed} at {gen.size} px; "
            f"about {_duration((n_images - done) * per_render)} on {gen.input.input.device} "
            "(interrupt at any time; run again to continue)")
    bar = tqdm(total=n_images, initial=done, desc="FEU corpus", unit="image",
               disable=not progress)
    with partial.keeping():  # batches are indexed from the start: a resumed run draws the same
        for first in range(done - done % batch, n_images, batch):
            n = min(batch, n_images - first)
            embeddings = clip.encode_image(frames(first // batch, n), differentiable=False).cpu()
            skip = done - first if first < done else 0  # a batch the last run saved in part
            partial.add(embeddings=list(embeddings[skip:].half()))
            bar.update(n - skip)
    bar.close()
    out = root / "feu_corpus.pt"
    torch.save({"embeddings": torch.stack(partial.items["embeddings"]), "source": source}, out)
    register_component(root, "feu_corpus", out.name, format="wordbrush-feu-corpus")
    partial.remove()
    return out
