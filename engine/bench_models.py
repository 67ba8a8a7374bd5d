"""``wordbrush bench models``: full-size model forward times on the device present.

Times the FFHQ-1024 StyleGAN2 generator (synthesis of one W+ with fixed noise), the
official e4e encoder (one 256x256 image) and OpenCLIP ViT-B-32 (one image, one prompt),
all with random weights in the official layouts (no downloads). fp32 everywhere; on a
GPU also fp16 and bf16 under autocast. Each figure is the median of ``--repeats`` after
one warm-up; the ratio column compares each precision with fp32 in the same run, and
the last column is the largest absolute difference of its output from fp32's (the outputs
are images in [-1, 1] and unit-scale CLIP embeddings, so 1e-2 is the tolerance to read).

Then the one-pass methods' step ladder (:func:`engine.methods.guidance.step_read_as_asked`):
its other five steps drawn as one batch against one by one, for the demo pack's generator
and the FFHQ-1024 one, with the batch :func:`~engine.methods.guidance.ladder_batch` picks.
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


def _first_tensor(out: Any) -> torch.Tensor:
    """A model's main output (the generator returns the image and more)."""
    while isinstance(out, (tuple, list)):
        out = out[0]
    return out


def _full_generator(device: torch.device) -> Any:
    from .models.stylegan2 import Generator

    return Generator(1024, 512, 8, channel_multiplier=2).eval().to(device)


def _models(device: torch.device, generator: Any) -> dict[str, Callable[[], Any]]:
    from .models.clip import create_clip
    from .models.e4e import Encoder4Editing

    w_plus = torch.randn(1, generator.n_latent, 512, device=device)
    encoder = Encoder4Editing().eval().to(device)
    face = torch.randn(1, 3, 256, 256, device=device).clamp(-1, 1)
    clip = create_clip("ViT-B-32", device=device)
    image = torch.rand(1, 3, 224, 224, device=device) * 2 - 1
    tokens = clip.tokenize(["a red star"]).to(device)
    return {
        "stylegan2-1024 synthesis": lambda: generator.synthesis(w_plus, noise="fixed"),
        "e4e encode 256": lambda: encoder(face),
        "ViT-B-32 image": lambda: clip.encode_image(image, differentiable=False),
        "ViT-B-32 text": lambda: clip.model.encode_text(tokens),
    }


def bench_models(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .runner import resolve_device

    device = resolve_device(args.device)
    precisions = ["fp32"] + (["fp16", "bf16"] if device.type == "cuda" else [])
    where = (torch.cuda.get_device_name(device) if device.type == "cuda"
             else f"{torch.get_num_threads()} CPU threads")
    print(f"device: {device} ({where}), torch {torch.__version__}, median of {args.repeats}")
    generator = _full_generator(device)
    models = _models(device, generator)
    rows = []
    with tqdm(total=len(models) * len(precisions), desc="bench models") as bar:
        for name, fn in models.items():
            base = None
            reference = None
            for precision in precisions:
                dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision)
                ctx = torch.autocast(device.type, dtype=dtype) if dtype else nullcontext()

                def run(fn: Callable[[], Any] = fn, ctx: Any = ctx) -> Any:
                    with ctx:
                        return fn()

                seconds = _time(run, args.repeats, device)
                base = base or seconds
                with torch.inference_mode():
                    out = _first_tensor(run()).float()
                reference = out if reference is None else reference
                error = (out - reference).abs().max().item()
                rows.append((name, precision, seconds, base / seconds, error))
                bar.update()
    print(f"{'model':<28}{'precision':<11}{'time':>12}{'x fp32 speed':>14}{'max |diff|':>12}")
    for name, precision, seconds, ratio, error in rows:
        print(f"{name:<28}{precision:<11}{seconds * 1000:>10.1f}ms{ratio:>14.2f}"
              f"{error:>12.2e}")
    _bench_ladder(device, generator, args.repeats)
    return 0


def _bench_ladder(device: torch.device, full: Any, repeats: int) -> None:
    """The ladder's five renders at once against one by one, fp32."""
    from tqdm import tqdm

    from .methods.guidance import NEAREST_STEPS, ladder_batch
    from .packs import PackRegistry

    generators = {"demo pack": PackRegistry.standard(device=device).get("demo").get("generator"),
                  "stylegan2-1024": full}
    n = len(NEAREST_STEPS)
    rows = []
    for name, gen in tqdm(generators.items(), desc="bench ladder"):
        at_once, by_one = _ladder_times(gen, n, repeats, device)
        rows.append((name, at_once, by_one, ladder_batch(gen.synthesis_macs(), device)))
    print(f"\nthe ladder's {n} other steps (fp32): one batch against one by one")
    print(f"{'generator':<28}{'one batch':>12}{'one by one':>12}{'ratio':>8}{'drawn by':>10}")
    for name, at_once, by_one, batch in rows:
        print(f"{name:<28}{at_once * 1000:>10.1f}ms{by_one * 1000:>10.1f}ms"
              f"{at_once / by_one:>8.2f}{batch:>10}")


def _ladder_times(gen: Any, n: int, repeats: int, device: torch.device) -> tuple[float, float]:
    """Seconds to render ``n`` W+ as one batch, and one by one."""
    w = torch.randn(n, gen.n_latent, gen.style_dim, device=device)
    at_once = _time(lambda: gen.synthesis(w, noise="fixed"), repeats, device)
    by_one = _time(lambda: [gen.synthesis(w[k:k + 1], noise="fixed") for k in range(n)],
                   repeats, device)
    return at_once, by_one
