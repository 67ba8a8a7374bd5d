"""``wordbrush bench models``: full-size model forward times on the device present.

Times the FFHQ-1024 StyleGAN2 generator (synthesis of one W+ with fixed noise), the
official e4e encoder (one 256x256 image) and OpenCLIP ViT-B-32 (one image, one prompt),
all with random weights in the official layouts (no downloads). fp32 everywhere; on a
GPU also fp16 and bf16 under autocast. Each figure is the median of ``--repeats`` after
one warm-up; the ratio column compares each precision with fp32 in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import torch


def _time(fn: Callable[[], Any], repeats: int, device: torch.device) -> float:
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    with torch.inference_mode():
        fn()
        sync()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            sync()
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def _models(device: torch.device) -> dict[str, Callable[[], Any]]:
    from .models.clip import create_clip
    from .models.e4e import Encoder4Editing
    from .models.stylegan2 import Generator

    generator = Generator(1024, 512, 8, channel_multiplier=2).eval().to(device)
    w_plus = torch.randn(1, generator.n_latent, 512, device=device)
    encoder = Encoder4Editing().eval().to(device)
    face = torch.randn(1, 3, 256, 256, device=device).clamp(-1, 1)
    clip = create_clip("ViT-B-32", device=device)
    image = torch.rand(1, 3, 224, 224, device=device) * 2 - 1
    return {
        "stylegan2-1024 synthesis": lambda: generator.synthesis(w_plus, noise="fixed"),
        "e4e encode 256": lambda: encoder(face),
        "ViT-B-32 image": lambda: clip.encode_image(image, differentiable=False),
        "ViT-B-32 text": lambda: clip.model.encode_text(clip.tokenize(["a red star"])),
    }


def bench_models(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .runner import resolve_device

    device = resolve_device(args.device)
    precisions = ["fp32"] + (["fp16", "bf16"] if device.type == "cuda" else [])
    where = (torch.cuda.get_device_name(device) if device.type == "cuda"
             else f"{torch.get_num_threads()} CPU threads")
    print(f"device: {device} ({where}), torch {torch.__version__}, median of {args.repeats}")
    models = _models(device)
    rows = []
    with tqdm(total=len(models) * len(precisions), desc="bench models") as bar:
        for name, fn in models.items():
            base = None
            for precision in precisions:
                dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision)
                ctx = torch.autocast(device.type, dtype=dtype) if dtype else nullcontext()

                def run(fn: Callable[[], Any] = fn, ctx: Any = ctx) -> Any:
                    with ctx:
                        return fn()

                seconds = _time(run, args.repeats, device)
                base = base or seconds
                rows.append((name, precision, seconds, base / seconds))
                bar.update()
    print(f"{'model':<28}{'precision':<11}{'time':>12}{'x fp32 speed':>14}")
    for name, precision, seconds, ratio in rows:
        print(f"{name:<28}{precision:<11}{seconds * 1000:>10.1f}ms{ratio:>14.2f}")
    return 0
