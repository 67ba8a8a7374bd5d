"""The world as training tensors: rendered frames, hard-edged frames and framed canvas crops.

Images are ``[N, 3, S, S]`` floats in [-1, 1]; ``labels`` are ``[N, 4]`` integer indices in
``ATTR_KEYS`` order (shape, color, size, background); ``masks`` are the object's coverage.
Training batches are drawn from seeds of the ``train`` split only (``split_seed("train",
i)``), so val / test / independent seeds stay unseen by every model; a ``FrameSource`` on
``val`` serves calibration after training (CLIPInverter's residual gain).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from engine.world import (
    ATTR_KEYS,
    TRAIN_TEMPLATES,
    WORLD_SPEC,
    WorldSpec,
    caption,
    choices_rng,
    frame_of,
    random_caption,
    render_batch,
    render_edited,
    render_independent_scene,
    render_scene,
    split_seed,
)
from engine.world.captions import template_fields

HARD_INDEX_OFFSET = 50_000_000

__all__ = ["Batch", "EditPairs", "FrameSource", "captions_for", "framed_crops", "labels_of",
           "sample_edit", "scene_crop_pool", "to_tensor", "vocab"]


def vocab(spec: WorldSpec = WORLD_SPEC) -> dict[str, tuple[str, ...]]:
    return {"shape": spec.shapes, "color": spec.colors, "size": spec.sizes,
            "background": spec.backgrounds}


def labels_of(
    attrs: Sequence[Mapping[str, str | None]], spec: WorldSpec = WORLD_SPEC
) -> np.ndarray:
    """``[N, 4]`` int64 indices; -1 where an attribute is unknown (e.g. a size off the bands)."""
    v = vocab(spec)
    out = np.full((len(attrs), len(ATTR_KEYS)), -1, dtype=np.int64)
    for i, a in enumerate(attrs):
        for k, key in enumerate(ATTR_KEYS):
            value = a.get(key)
            if value is not None:
                out[i, k] = v[key].index(value)
    return out


def captions_for(labels: torch.Tensor, rng: np.random.Generator,
                 spec: WorldSpec = WORLD_SPEC) -> list[str]:
    """A random train-template caption for each row of ``labels`` (unknown entries left out)."""
    v = vocab(spec)
    return [random_caption({k: v[k][i] for k, i in zip(ATTR_KEYS, row, strict=True) if i >= 0},
                           rng) for row in labels.tolist()]


def sample_edit(
    attrs: Mapping[str, str], rng: np.random.Generator, spec: WorldSpec = WORLD_SPEC,
    match_fraction: float = 0.25, templates: Sequence[str] = TRAIN_TEMPLATES,
) -> tuple[str, str, dict[str, str]]:
    """A caption-driven edit of a frame with attributes ``attrs``.

    A template is drawn; with probability ``match_fraction`` the caption describes the frame
    as it is, otherwise 1 to all of the attributes the template names get new values.
    Returns ``(edit caption, the same template filled with attrs, changes)``; attributes the
    caption does not name are never changed (an edit keeps what it was not asked about).
    """
    template = templates[int(rng.integers(len(templates)))]
    fields = template_fields(template)
    changes: dict[str, str] = {}
    if rng.random() >= match_fraction:
        count = int(rng.integers(1, len(fields) + 1))
        for key in rng.choice(fields, size=count, replace=False):
            others = [v for v in vocab(spec)[str(key)] if v != attrs[str(key)]]
            changes[str(key)] = others[int(rng.integers(len(others)))]
    return caption({**attrs, **changes}, template), caption(attrs, template), changes


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 ``[N, H, W, 3]`` -> float ``[N, 3, H, W]`` in [-1, 1]."""
    pixels = np.require(images, requirements=["C", "W"])  # copies read-only views only
    return torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 127.5 - 1


@dataclass
class Batch:
    images: torch.Tensor  # [N, 3, S, S] in [-1, 1]
    masks: torch.Tensor  # [N, 1, S, S] object coverage
    labels: torch.Tensor  # [N, 4]

    def to(self, device: torch.device) -> Batch:
        return Batch(self.images.to(device), self.masks.to(device), self.labels.to(device))


def framed_crops(
    n: int, split: str, first_index: int, independent: bool = False,
    size: int = WORLD_SPEC.frame_size, spec: WorldSpec = WORLD_SPEC, progress: bool = True,
    rng_offset: int | None = None,
) -> Batch:
    """``n`` framed crops of canvas scenes of ``split`` (tight and loose rect selections,
    canvases of 192-384 px, 1-3 objects), as an evaluator or a user frames them. With
    ``independent`` the scenes are drawn by the independent plain-Pillow code.

    The canvas, object count and selections are drawn from :func:`choices_rng`, or from
    ``default_rng(seed + rng_offset)`` where an offset is given: the committed pack's
    training pools were drawn that way, and stay reproducible."""
    images, masks, attrs = [], [], []
    bar = tqdm(total=n, desc=f"{split} scene crops", disable=not progress, mininterval=2.0)
    k = first_index
    while len(images) < n:
        seed = split_seed(split, k)
        rng = choices_rng(seed) if rng_offset is None else np.random.default_rng(seed + rng_offset)
        side = int(rng.choice([192, 256, 384]))
        n_obj = int(rng.integers(1, 4))
        scene = (render_independent_scene(seed, side, side, n_obj, spec=spec) if independent
                 else render_scene(seed, width=side, height=side, n_objects=n_obj, spec=spec))
        for j in range(len(scene.objects)):
            if len(images) >= n:
                break
            looseness = "tight" if rng.random() < 0.5 else "loose"
            framed = frame_of(scene, j, looseness, size=size, rng=rng, spec=spec)
            if framed.attrs.get("size") is None:
                continue
            images.append(framed.image)
            masks.append(framed.object_mask)
            attrs.append(framed.attrs)
            bar.update(1)
        k += 1
    bar.close()
    return Batch(to_tensor(np.stack(images)),
                 torch.from_numpy(np.stack(masks).astype(np.float32))[:, None],
                 torch.from_numpy(labels_of(attrs, spec)))


def scene_crop_pool(
    n: int, split: str = "train", first_index: int = 0, size: int = WORLD_SPEC.frame_size,
    spec: WorldSpec = WORLD_SPEC, cache: Path | None = None, progress: bool = True,
) -> Batch:
    """A fixed pool of :func:`framed_crops` for training, cached to ``cache`` (``.npz``)."""
    if cache is not None and cache.is_file():
        data = np.load(cache)
        if len(data["images"]) >= n:
            return Batch(to_tensor(data["images"][:n]),
                         torch.from_numpy(data["masks"][:n])[:, None],
                         torch.from_numpy(data["labels"][:n]))
    batch = framed_crops(n, split, first_index, False, size, spec, progress,
                         rng_offset=1_000_003)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        images = ((batch.images.permute(0, 2, 3, 1) + 1) * 127.5).round().clamp(0, 255)
        np.savez_compressed(cache, images=images.to(torch.uint8).numpy(),
                            masks=batch.masks[:, 0].numpy(), labels=batch.labels.numpy())
    return batch


@dataclass
class EditPairs:
    """Frames, their ground-truth edits and the captions that ask for them."""

    source: Batch
    target: Batch  # each source frame with the caption's attributes set (same place, shades)
    captions: list[str]  # what the edit asks for
    source_captions: list[str]  # the same template filled with the source's attributes
    changed: torch.Tensor  # [N] bool: the caption asks for a change

    def to(self, device: torch.device) -> EditPairs:
        return dataclasses.replace(self, source=self.source.to(device),
                                   target=self.target.to(device),
                                   changed=self.changed.to(device))


@dataclass
class FrameSource:
    """Endless batches: renderer frames, hard-edged renderer frames (no supersampling: what
    a user's flat fill looks like) and framed canvas crops from a fixed pool.

    ``batch(step, n)`` is deterministic in ``step``; ``hard_fraction`` and
    ``crop_fraction`` set the mix.
    """

    spec: WorldSpec = WORLD_SPEC
    size: int = WORLD_SPEC.frame_size
    hard_fraction: float = 0.2
    crop_fraction: float = 0.2
    crops: Batch | None = None
    seed_offset: int = 0
    split: str = "train"

    def __post_init__(self) -> None:
        self._hard_spec = dataclasses.replace(self.spec, supersample=1)

    def _render_seeds(self, step: int, n: int, n_crop: int) -> list[tuple[int, WorldSpec, int]]:
        """(count, spec, seed) of the soft and the hard-edged renderer frames of a batch;
        hard-edged frames come from other train indices, so no two parts share a seed."""
        n_hard = round(n * self.hard_fraction)
        seed = split_seed(self.split, self.seed_offset + step)
        hard_seed = split_seed(self.split, HARD_INDEX_OFFSET + self.seed_offset + step)
        parts = ((n - n_crop - n_hard, self.spec, seed), (n_hard, self._hard_spec, hard_seed))
        return [part for part in parts if part[0]]

    def pairs(self, step: int, n: int, match_fraction: float = 0.25) -> EditPairs:
        """``n`` renderer frames (soft and hard-edged, no crops), each with a caption from
        :func:`sample_edit` and the frame as that caption would make it (``render_edited``).
        Deterministic in ``step``."""
        rng = np.random.default_rng(split_seed(self.split, self.seed_offset + step) + 17)
        sources, targets = [], []
        captions: list[str] = []
        source_captions: list[str] = []
        changed: list[bool] = []
        for count, spec, seed in self._render_seeds(step, n, 0):
            imgs, masks, attrs, params = render_batch(count, seed, size=self.size, spec=spec,
                                                      return_params=True)
            edits = [sample_edit(a, rng, self.spec, match_fraction) for a in attrs]
            e_imgs, e_masks, e_attrs = render_edited(
                params, attrs, [c for _, _, c in edits], int(rng.integers(2**62)),
                size=self.size, spec=spec)
            sources.append(Batch(to_tensor(imgs), torch.from_numpy(masks)[:, None],
                                 torch.from_numpy(labels_of(attrs, self.spec))))
            targets.append(Batch(to_tensor(e_imgs), torch.from_numpy(e_masks)[:, None],
                                 torch.from_numpy(labels_of(e_attrs, self.spec))))
            captions += [c for c, _, _ in edits]
            source_captions += [c for _, c, _ in edits]
            changed += [bool(c) for _, _, c in edits]
        return EditPairs(_concat(sources), _concat(targets), captions, source_captions,
                         torch.tensor(changed))

    def batch(self, step: int, n: int) -> Batch:
        seed = split_seed(self.split, self.seed_offset + step)
        rng = np.random.default_rng(seed)
        n_crop = round(n * self.crop_fraction) if self.crops is not None else 0
        parts: list[Batch] = []
        for count, spec, s in self._render_seeds(step, n, n_crop):
            imgs, masks, attrs = render_batch(count, s, size=self.size, spec=spec)
            parts.append(Batch(to_tensor(imgs), torch.from_numpy(masks)[:, None],
                               torch.from_numpy(labels_of(attrs, self.spec))))
        if n_crop:
            assert self.crops is not None
            idx = torch.from_numpy(rng.integers(len(self.crops.images), size=n_crop))
            parts.append(Batch(self.crops.images[idx], self.crops.masks[idx],
                               self.crops.labels[idx]))
        return _concat(parts)


def _concat(parts: Sequence[Batch]) -> Batch:
    return Batch(torch.cat([p.images for p in parts]), torch.cat([p.masks for p in parts]),
                 torch.cat([p.labels for p in parts]))
