"""Comparing a checkpoint's state dict with a model's, for clear strict-load errors."""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor


def layout_differences(
    want: Mapping[str, Tensor], have: Mapping[str, Tensor]
) -> tuple[list[str], list[str], list[str]]:
    """Keys the checkpoint lacks, keys it has extra, and shape mismatches (described)."""
    missing = [k for k in want if k not in have]
    unexpected = [k for k in have if k not in want]
    shapes = [
        f"{k}: checkpoint {tuple(have[k].shape)} vs model {tuple(v.shape)}"
        for k, v in want.items()
        if k in have and tuple(have[k].shape) != tuple(v.shape)
    ]
    return missing, unexpected, shapes


def summarise_differences(missing: list[str], unexpected: list[str], shapes: list[str],
                          shown: int = 4) -> list[str]:
    """One short phrase per kind of difference, naming at most ``shown`` keys each."""
    parts = []
    for name, items in (("missing", missing), ("unexpected", unexpected), ("shape", shapes)):
        if items:
            more = " ..." if len(items) > shown else ""
            parts.append(f"{len(items)} {name}: {', '.join(items[:shown])}{more}")
    return parts
