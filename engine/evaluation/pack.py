"""The demo pack's quality gates (issue: aligned demo pack), printed by ``wordbrush eval pack``.

Every set is drawn from seeds no model trained on (``test`` and ``independent`` splits):

* judge: accuracy on rendered frames, per attribute (gate >= 99%);
* CLIP: zero-shot accuracy per attribute family with held-out caption templates (>= 95%);
* inversion of framed canvas-scene crops (the pack's inversion: its encoder, then the
  refinement steps its manifest names; the encoder alone is reported beside it): mean PSNR
  (>= 26 dB) and the judge finding the ground truth on the inversion, per attribute (>= 95%);
* the same on independently drawn scenes (plain Pillow shapes): judge on inversions (>= 90%);
* samples from random z at psi = 1: share judged with confidence > 0.9 on every attribute
  (>= 90%), and every value's share at least half its share of the world. Beside them, the
  same two figures for held-out frames encoded and rendered from their one w (the first W+
  row): what the mapping network is fitted to, so the best a mapping can reach with this
  synthesis network.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from engine.methods.inversion import Refinement, encode_w
from engine.methods.inversion import invert as invert_latents
from engine.training.data import Batch, framed_crops, labels_of, to_tensor, vocab
from engine.world import (
    ATTR_KEYS,
    HELDOUT_TEMPLATES,
    WORLD_SPEC,
    WorldSpec,
    caption,
    render_batch,
    split_seed,
)
from engine.world.captions import template_fields

__all__ = ["Gate", "PackReport", "evaluate_pack"]


@dataclass
class Gate:
    name: str
    value: float
    threshold: float
    unit: str = "%"
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.value >= self.threshold

    def line(self) -> str:
        def fmt(v: float) -> str:
            return f"{100 * v:.1f}%" if self.unit == "%" else f"{v:.2f} {self.unit}"

        mark = "PASS" if self.passed else "FAIL"
        extra = f"  ({self.detail})" if self.detail else ""
        return f"{mark}  {self.name:<52} {fmt(self.value):>9}  (gate {fmt(self.threshold)}){extra}"


@dataclass
class PackReport:
    gates: list[Gate] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gates)

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed,
                "gates": [{"name": g.name, "value": g.value, "threshold": g.threshold,
                           "passed": g.passed, "detail": g.detail} for g in self.gates],
                "figures": self.figures}


def _judge_hits(judge: Any, images: torch.Tensor, labels: torch.Tensor) -> dict[str, np.ndarray]:
    probs = judge.probabilities(images)
    out = {}
    for k, key in enumerate(ATTR_KEYS):
        y = labels[:, k].numpy()
        pred = probs[key].argmax(-1).numpy()
        out[key] = np.where(y >= 0, pred == y, True)
    return out


def _rates(hits: dict[str, np.ndarray]) -> dict[str, float]:
    return {k: float(v.mean()) for k, v in hits.items()}


def scene_crops(n: int, split: str, independent: bool, spec: WorldSpec,
                progress: bool = True, size: int | None = None) -> Batch:
    """``n`` framed crops of held-out canvas scenes (tight and loose rect selections)."""
    return framed_crops(n, split, 10_000, independent, size or spec.frame_size, spec, progress)


def invert(pack: Any, images: torch.Tensor, batch: int = 64, progress: bool = False,
           desc: str = "invert", refinement: Refinement | None = None) -> torch.Tensor:
    """Renders of the pack's inversions of ``images``: its encoder, then ``refinement`` (by
    default the pack's own, as every method inverts)."""
    enc, gen = pack.get("encoder"), pack.get("generator")
    refinement = Refinement.of_pack(pack) if refinement is None else refinement
    dev = gen.input.input.device
    out = []
    with tqdm(total=len(images) * max(refinement.steps, 1), desc=desc,
              disable=not progress) as bar:
        for i in range(0, len(images), batch):
            x = images[i : i + batch].to(dev)

            def advance(_done: int, _total: int, _render: torch.Tensor, n: int = len(x)
                        ) -> None:
                bar.update(n)  # called once a step

            inv = invert_latents(gen, enc, x, refinement, on_step=advance)
            out.append(inv.image.clamp(-1, 1).cpu())
            if refinement.steps == 0:
                bar.update(len(x))
    return torch.cat(out)


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB for images in [-1, 1] (peak-to-peak 2)."""
    mse = (a - b).square().flatten(1).mean(1).clamp_min(1e-10)
    return 10 * torch.log10(4.0 / mse)


@torch.no_grad()
def clip_zero_shot(clip: Any, images: torch.Tensor, labels: torch.Tensor,
                   spec: WorldSpec, progress: bool = False) -> dict[str, dict[str, float]]:
    """Per family, per held-out template mentioning it: accuracy of picking the true value
    among all values, the template's other fields filled with the image's truth."""
    v = vocab(spec)
    img = torch.cat([clip.encode_image(images[i : i + 256], differentiable=False)
                     for i in range(0, len(images), 256)]).cpu()
    text_cache: dict[str, torch.Tensor] = {}

    def embed(texts: list[str]) -> torch.Tensor:
        missing = [t for t in dict.fromkeys(texts) if t not in text_cache]
        if missing:
            text_cache.update(zip(missing, clip.encode_text(missing).cpu(), strict=True))
        return torch.stack([text_cache[t] for t in texts])

    jobs = [(k, key, t) for k, key in enumerate(ATTR_KEYS) for t in HELDOUT_TEMPLATES
            if key in template_fields(t)]
    out: dict[str, dict[str, float]] = {key: {} for key in ATTR_KEYS}
    with tqdm(total=len(jobs) * len(images), desc="CLIP zero-shot", disable=not progress) as bar:
        for k, key, t in jobs:
            hits = []
            for i in range(len(images)):
                truth = {kk: v[kk][int(labels[i, j])] for j, kk in enumerate(ATTR_KEYS)}
                texts = [caption({**truth, key: value}, t) for value in v[key]]
                sims = img[i] @ embed(texts).t()
                hits.append(int(sims.argmax()) == int(labels[i, k]))
            out[key][t] = float(np.mean(hits))
            bar.update(len(images))
    return out


def evaluate_pack(pack: Any, n: int = 600, n_samples: int = 1000, spec: WorldSpec = WORLD_SPEC,
                  progress: bool = True, log: Callable[[str], None] = print,
                  n_refined: int = 200) -> PackReport:
    report = PackReport()
    judge = pack.get("judge")
    v = vocab(spec)
    size = pack.resolution

    # 1. the judge on held-out rendered frames
    imgs, _, attrs = render_batch(2 * n, split_seed("test", 1), size=size, spec=spec)
    frames = to_tensor(imgs)
    labels = torch.from_numpy(labels_of(attrs, spec))
    rates = _rates(_judge_hits(judge, frames, labels))
    report.figures["judge_on_rendered_frames"] = rates
    for key in ATTR_KEYS:
        report.gates.append(Gate(f"judge accuracy, rendered frames: {key}", rates[key], 0.99))

    # 2. tiny CLIP zero-shot with held-out templates
    clip = pack.get("clip")
    zs = clip_zero_shot(clip, frames[:1000], labels[:1000], spec, progress)
    report.figures["clip_zero_shot"] = zs
    for key in ATTR_KEYS:
        accs = list(zs[key].values())
        report.gates.append(Gate(f"CLIP zero-shot, held-out templates: {key}",
                                 float(np.mean(accs)), 0.95,
                                 detail=f"templates {100 * min(accs):.1f}-{100 * max(accs):.1f}%"))

    # 3. inversions of framed crops of held-out canvas scenes: the gates judge the pack's
    # inversion (encoder, then its refinement steps: what every method edits from) on the
    # first ``n_refined`` crops; the encoder alone is reported on all ``n`` as a figure
    refinement = Refinement.of_pack(pack)
    for independent, gate_attr, label in ((False, 0.95, "scenes"), (True, 0.90, "independent")):
        crops = scene_crops(n, "independent" if independent else "test", independent, spec,
                            progress, size)
        orig = _rates(_judge_hits(judge, crops.images, crops.labels))
        enc_only = invert(pack, crops.images, progress=progress,
                          desc=f"encode {label}", refinement=Refinement())
        enc_rates = _rates(_judge_hits(judge, enc_only, crops.labels))
        figures: dict[str, Any] = {
            "judge_on_originals": orig,
            "encoder_only": {"n": n, "psnr_mean": float(psnr(enc_only, crops.images).mean()),
                             "judge": enc_rates}}
        if refinement.steps:
            k = min(n, n_refined)
            images, labels = crops.images[:k], crops.labels[:k]
            inv = invert(pack, images, progress=progress,
                         desc=f"invert {label} ({refinement.steps} refinement steps)")
            how = f"encoder + {refinement.steps} steps, {k} crops"
        else:
            images, labels, inv = crops.images, crops.labels, enc_only
            how = f"encoder, {n} crops"
        p = psnr(inv, images)
        rates = _rates(_judge_hits(judge, inv, labels))
        figures.update({"inversion": how, "psnr_mean": float(p.mean()),
                        "psnr_p10": float(p.quantile(0.1)), "judge_on_inversions": rates})
        report.figures[f"inversion_{label}"] = figures
        if not independent:
            report.gates.append(Gate(f"inversion PSNR, scene crops (mean; {how})",
                                     float(p.mean()), 26.0, unit="dB"))
        for key in ATTR_KEYS:
            report.gates.append(Gate(
                f"judge on inversions, {label}: {key}", rates[key], gate_attr,
                detail=f"{how}; encoder alone {100 * enc_rates[key]:.1f}%; "
                       f"originals {100 * orig[key]:.1f}%"))

    # 4. samples from random z at psi = 1
    gen = pack.get("generator")
    dev = gen.input.input.device
    zgen = torch.Generator().manual_seed(12345)
    samples = []
    with torch.no_grad():
        for i in tqdm(range(0, n_samples, 250), desc="samples", disable=not progress):
            z = torch.randn(min(250, n_samples - i), gen.style_dim, generator=zgen).to(dev)
            samples.append(gen.synthesis(gen.mapping(z), noise="fixed").clamp(-1, 1).cpu())
    confident, worst, coverage = _sample_quality(judge, torch.cat(samples), v)
    report.figures["sample_value_shares"] = coverage
    # what the best possible mapping could give: held-out frames' encoded w (the first W+
    # row, what the mapping is fitted to) each rendered from that one w
    enc = pack.get("encoder")
    one_w = []
    with torch.no_grad():
        for chunk in frames[:n_samples].split(250):
            w_plus = encode_w(enc, chunk.to(dev))
            one_w.append(gen.synthesis(w_plus[:, :1].expand_as(w_plus), noise="fixed")
                         .clamp(-1, 1).cpu())
    ceiling, ceiling_worst, _ = _sample_quality(judge, torch.cat(one_w), v)
    report.figures["samples_ceiling_encoded_frames_one_w"] = {
        "confident": ceiling, "rarest_share_ratio": ceiling_worst}
    ceiling_note = (f"encoded held-out frames rendered from their one w: {100 * ceiling:.1f}%")
    report.gates.append(Gate("samples judged with confidence > 0.9 on every attribute",
                             confident, 0.90, detail=ceiling_note))
    report.gates.append(Gate("samples: rarest value's share / its world share", worst, 0.5,
                             unit="x", detail=f"encoded frames from one w: {ceiling_worst:.2f} x"))
    return report


def _sample_quality(judge: Any, images: torch.Tensor, v: dict[str, tuple[str, ...]]
                    ) -> tuple[float, float, dict[str, dict[str, float]]]:
    """Share judged with confidence > 0.9 on every attribute; the rarest value's share over
    its share of the world; every value's share."""
    probs = judge.probabilities(images)
    confident = torch.stack([probs[k].max(-1).values > 0.9 for k in ATTR_KEYS]).all(0)
    coverage: dict[str, dict[str, float]] = {}
    worst = 1e9
    for key in ATTR_KEYS:
        pred = probs[key].argmax(-1)
        shares = {value: float((pred == i).float().mean()) for i, value in enumerate(v[key])}
        coverage[key] = shares
        worst = min(worst, min(s * len(v[key]) for s in shares.values()))
    return float(confident.float().mean()), worst, coverage
