"""What every training stage shares: a resumable checkpoint, a time-boxed tqdm loop,
sample grids and the device choice."""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

__all__ = [
    "Checkpoint",
    "StepLoop",
    "cosine_lr",
    "pick_device",
    "save_grid",
    "seed_everything",
]


def pick_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA when present, else CPU; ``cpu`` / ``cuda`` / ``cuda:N`` as given.
    Raises ValueError (a sentence for ``--device``) for a name torch does not know or a
    CUDA device torch does not see."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ValueError(f"--device {name}: {exc}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but torch sees no CUDA device")
    return device


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def cosine_lr(step: int, total: int, base: float, warmup: int = 0, floor: float = 0.0) -> float:
    """Linear warm-up, then cosine from ``base`` down to ``floor * base`` at ``total``."""
    if warmup and step < warmup:
        return base * (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return base * (floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * t)))


@dataclass
class Checkpoint:
    """One stage's resumable state in ``folder/<stage>.ckpt`` (written atomically).

    The file holds only tensors and plain containers, so it is read back with
    ``weights_only=True`` like every other file here.
    """

    folder: Path
    stage: str

    @property
    def path(self) -> Path:
        return self.folder / f"{self.stage}.ckpt"

    def exists(self) -> bool:
        return self.path.is_file()

    def load(self) -> dict[str, Any] | None:
        if not self.exists():
            return None
        return torch.load(self.path, map_location="cpu", weights_only=True)

    def save(self, state: Mapping[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        torch.save(dict(state), tmp)
        os.replace(tmp, self.path)

    def resume(self, parts: Mapping[str, Any], rng: torch.Generator | None = None) -> int:
        """Load every ``parts`` entry (modules, optimisers: anything with a state dict) and
        the RNG from the last save; the step to continue from (0 without a checkpoint)."""
        state = self.load()
        if state is None:
            return 0
        for key, part in parts.items():
            part.load_state_dict(state[key])
        if rng is not None and "rng" in state:
            rng.set_state(state["rng"])
        return int(state["step"])

    def snapshot(self, parts: Mapping[str, Any], step: int,
                 rng: torch.Generator | None = None) -> None:
        """Save every ``parts`` entry's state dict, the RNG, and the next step."""
        state: dict[str, Any] = {key: part.state_dict() for key, part in parts.items()}
        if rng is not None:
            state["rng"] = rng.get_state()
        state["step"] = step
        self.save(state)

    def done_marker(self) -> Path:
        return self.folder / f"{self.stage}.done.json"

    def is_done(self) -> bool:
        return self.done_marker().is_file()

    def mark_done(self, summary: Mapping[str, Any]) -> None:
        self.done_marker().write_text(json.dumps(dict(summary), indent=2) + "\n")

    def done_steps(self) -> int | None:
        """The step count the finished stage recorded (None: not finished)."""
        if not self.is_done():
            return None
        return int(json.loads(self.done_marker().read_text()).get("steps", 0))

    def reopen(self) -> None:
        """Mark a finished stage unfinished, so that it resumes from its checkpoint (to run
        more steps) or, with the checkpoint removed, starts over."""
        self.done_marker().unlink(missing_ok=True)

    def discard(self) -> None:
        """Forget the stage: checkpoint and done marker."""
        self.reopen()
        self.path.unlink(missing_ok=True)


@dataclass
class StepLoop:
    """Steps ``start..total`` with a tqdm bar, a wall-clock budget and periodic saves.

    Iterating yields step numbers. ``should_save(step)`` is true every ``save_every_s``
    seconds (and on the last step); the loop stops early, after a save, when ``budget_s``
    runs out, so a 10-minute GPU loan or a session limit never loses more than one interval.
    """

    total: int
    start: int = 0
    desc: str = "train"
    budget_s: float | None = None
    save_every_s: float = 240.0
    disable: bool = False
    _last_save: float = field(default_factory=time.monotonic)
    _t0: float = field(default_factory=time.monotonic)
    stopped_early: bool = False
    bar: Any = None

    def __iter__(self) -> Iterator[int]:
        self._t0 = self._last_save = time.monotonic()
        self.bar = tqdm(total=self.total, initial=self.start, desc=self.desc,
                        disable=self.disable, dynamic_ncols=True, mininterval=2.0)
        try:
            for step in range(self.start, self.total):
                yield step
                self.bar.update(1)
                if self.out_of_time():
                    self.stopped_early = step + 1 < self.total
                    return
        finally:
            self.bar.close()

    def out_of_time(self) -> bool:
        return self.budget_s is not None and time.monotonic() - self._t0 >= self.budget_s

    def should_save(self, step: int) -> bool:
        now = time.monotonic()
        if step + 1 >= self.total or now - self._last_save >= self.save_every_s or (
            self.budget_s is not None and now - self._t0 >= self.budget_s
        ):
            self._last_save = now
            return True
        return False

    def show(self, **values: float) -> None:
        if self.bar is not None:
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in values.items()}, refresh=False)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """``[N, 3, H, W]`` in [-1, 1] -> ``[N, H, W, 3]`` uint8."""
    x = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def save_grid(rows: list[torch.Tensor], path: Path, pad: int = 2) -> Path:
    """Save rows of image batches (each ``[N, 3, H, W]`` in [-1, 1]) as one PNG grid."""
    arrays = [to_uint8(r) for r in rows]
    n = max(a.shape[0] for a in arrays)
    h, w = arrays[0].shape[1:3]
    grid = np.full((len(arrays) * (h + pad) + pad, n * (w + pad) + pad, 3), 255, np.uint8)
    for i, a in enumerate(arrays):
        for j in range(a.shape[0]):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            grid[y : y + h, x : x + w] = a[j]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(path)
    return path
