"""``wordbrush train demo-pack``: every stage in order, then the pack folder.

Stages, each resumable from ``WORK/<stage>.ckpt`` and skipped once ``WORK/<stage>.done.json``
exists: ``judge`` -> ``clip`` -> ``autoencoder`` -> ``mapping`` -> ``export``. A stage
stopped by its time budget (``--minutes`` for the whole command, ``--stage-minutes`` per
stage) resumes on the next run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

__all__ = ["STAGES", "default_work_dir", "run_stages"]


def default_work_dir() -> Path:
    import os

    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "wordbrush" / "train" / "demo"


def _judge(work: Path, device: torch.device, budget: float | None, **kw: Any) -> dict:
    from engine.training.judge import train_judge

    return train_judge(work, device, budget_s=budget, **kw)


def _clip(work: Path, device: torch.device, budget: float | None, **kw: Any) -> dict:
    from engine.training.clip import train_clip

    return train_clip(work, device, budget_s=budget, **kw)


def _autoencoder(work: Path, device: torch.device, budget: float | None, **kw: Any) -> dict:
    from engine.training.autoencoder import train_autoencoder

    return train_autoencoder(work, device, budget_s=budget, **kw)


def _mapping(work: Path, device: torch.device, budget: float | None, **kw: Any) -> dict:
    from engine.training.mapping import train_mapping

    return train_mapping(work, device, budget_s=budget, **kw)


def _export(work: Path, device: torch.device, budget: float | None, **kw: Any) -> dict:
    from engine.training.export import export_pack

    return export_pack(work, **kw)


STAGES: dict[str, Callable[..., dict]] = {
    "judge": _judge,
    "clip": _clip,
    "autoencoder": _autoencoder,
    "mapping": _mapping,
    "export": _export,
}


def run_stages(
    stages: list[str],
    work: Path,
    device: torch.device,
    minutes: float | None = None,
    stage_minutes: float | None = None,
    stage_options: dict[str, dict[str, Any]] | None = None,
    log: Callable[[str], None] = print,
) -> bool:
    """Run ``stages`` in order; True when all of them finished (False: budget ran out)."""
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    timings_path = work / "timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.is_file() else {}
    for name in stages:
        done = work / f"{name}.done.json"
        if done.is_file() and name != "export":
            log(f"[{name}] already done ({done})")
            continue
        budget = None
        if minutes is not None:
            budget = minutes * 60 - (time.monotonic() - t0)
            if budget <= 0:
                log(f"[{name}] not started: the --minutes budget is spent")
                return False
        if stage_minutes is not None:
            budget = min(budget or float("inf"), stage_minutes * 60)
        note = f", budget {budget / 60:.1f} min" if budget else ""
        log(f"[{name}] starting on {device}{note}")
        if not (work / f"{name}.ckpt").is_file():
            timings.pop(name, None)  # a fresh start: earlier runs' time does not count
        s0 = time.monotonic()
        summary = STAGES[name](work, device, budget, **(stage_options or {}).get(name, {}))
        spent = time.monotonic() - s0
        timings[name] = timings.get(name, 0.0) + spent
        timings_path.write_text(json.dumps(timings, indent=2) + "\n")
        log(f"[{name}] {json.dumps(summary)} ({spent / 60:.1f} min this run, "
            f"{timings[name] / 60:.1f} min in all)")
        if not summary.get("finished", False):
            log(f"[{name}] stopped by its time budget; run the same command again to resume")
            return False
    return True
