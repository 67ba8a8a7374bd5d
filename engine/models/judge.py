"""The pack's judge: an attribute classifier used only to evaluate (never as a loss).

It reads a framed 64² crop (the manifest's framing applied to a selection or a
ground-truth object) and returns, per attribute key (``shape``, ``color``, ``size``,
``background``), probabilities over that key's values. Saved as a weights-only file
``{"format": "wordbrush-judge", "config": {...}, "state_dict": {...}}``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["Judge", "JudgeConfig", "load_judge", "save_judge"]

FORMAT = "wordbrush-judge"


@dataclass
class JudgeConfig:
    vocab: dict[str, list[str]] = field(default_factory=dict)  # key -> values, ATTR_KEYS order
    input_size: int = 64
    widths: tuple[int, ...] = (32, 64, 128, 192)
    hidden: int = 256

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["widths"] = list(self.widths)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> JudgeConfig:
        return cls(vocab={k: list(v) for k, v in d["vocab"].items()},
                   input_size=int(d["input_size"]), widths=tuple(int(w) for w in d["widths"]),
                   hidden=int(d["hidden"]))


def _block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class Judge(nn.Module):
    """A small CNN (stride-2 stages, each followed by a stride-1 conv) with one head per key."""

    def __init__(self, config: JudgeConfig) -> None:
        super().__init__()
        if not config.vocab:
            raise ValueError("a judge needs a vocabulary")
        self.config = config
        layers: list[nn.Module] = [_block(3, config.widths[0], 2)]
        cin = config.widths[0]
        for w in config.widths[1:]:
            layers += [_block(cin, w, 2), _block(w, w, 1)]
            cin = w
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(4), nn.Flatten())
        self.trunk = nn.Sequential(nn.Linear(cin * 16, config.hidden), nn.ReLU(inplace=True),
                                   nn.Dropout(0.1))
        self.heads = nn.ModuleDict({k: nn.Linear(config.hidden, len(v))
                                    for k, v in config.vocab.items()})

    @property
    def keys(self) -> list[str]:
        return list(self.config.vocab)

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        """Logits per key for ``[N, 3, S, S]`` images in [-1, 1] (resized to the input size)."""
        if images.shape[-1] != self.config.input_size or images.shape[-2] != self.config.input_size:
            images = F.interpolate(images, size=(self.config.input_size,) * 2, mode="bilinear",
                                   align_corners=False, antialias=True)
        h = self.trunk(self.features(images))
        return {k: head(h) for k, head in self.heads.items()}

    @torch.no_grad()
    def probabilities(self, images: Tensor, batch: int = 256) -> dict[str, Tensor]:
        was = self.training
        self.eval()
        outs: dict[str, list[Tensor]] = {k: [] for k in self.keys}
        for i in range(0, len(images), batch):
            logits = self(images[i : i + batch].to(next(self.parameters()).device))
            for k, v in logits.items():
                outs[k].append(v.softmax(-1).cpu())
        self.train(was)
        return {k: torch.cat(v) for k, v in outs.items()}

    def read(self, images: Tensor) -> list[dict[str, tuple[str, float]]]:
        """Per image: key -> (most likely value, its probability)."""
        probs = self.probabilities(images)
        out: list[dict[str, tuple[str, float]]] = [{} for _ in range(len(images))]
        for k, p in probs.items():
            conf, idx = p.max(-1)
            for i in range(len(images)):
                out[i][k] = (self.config.vocab[k][int(idx[i])], float(conf[i]))
        return out


def save_judge(judge: Judge, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sd = {k: v.detach().cpu().clone() for k, v in judge.state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"format": FORMAT, "config": judge.config.to_dict(), "state_dict": sd}, tmp)
    tmp.replace(path)


def load_judge(path: str | Path, device: Any = "cpu") -> Judge:
    data = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path}: not a wordbrush judge file")
    judge = Judge(JudgeConfig.from_dict(data["config"]))
    judge.load_state_dict(data["state_dict"], strict=True)
    return judge.eval().requires_grad_(False).to(device)


def accuracy(logits: Mapping[str, Tensor], labels: Tensor, keys: Sequence[str]) -> dict[str, float]:
    """Per key accuracy against ``labels [N, len(keys)]`` (entries < 0 ignored)."""
    out = {}
    for k, key in enumerate(keys):
        y = labels[:, k]
        ok = y >= 0
        out[key] = float((logits[key].argmax(-1)[ok] == y[ok]).float().mean()) if ok.any() else 1.0
    return out
