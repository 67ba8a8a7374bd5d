"""``wordbrush bench edit``: how long an artist waits, and what the engine adds.

* cold start: launching ``wordbrush serve`` until it answers, then the first edit (which
  loads the pack);
* warm: median time to the first preview and to the finished edit, through a real engine
  process and the client library, on a scene drawn by the pack's world;
* bare: the method's own ``run`` on the same framed region in this process (models already
  loaded), so ``overhead = warm done / bare`` is a ratio measured in the same run;
* with ``--variations N``: one request for N variations against N requests of one, warm,
  as a ratio (what the variations share, an optimiser's start, is made once);
* stages of the bare method: the time spent in each model (encoder passes, generator
  renders, CLIP image and text encodings: calls and seconds), the rest, and for a method
  that reports steps (the optimisers) the median time of one step; the peak memory of this
  process (which loaded the pack) and of the engine.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np


def _scene_request(framing: dict[str, Any], args: argparse.Namespace,
                   params: dict[str, Any]) -> tuple[Any, Any]:
    """The request the bench times: on a face pack (ffhq framing) a portrait with its face
    selected, else a scene of the demo world with one object selected."""
    from engine.world import render_scene, selection_for
    from protocol.framing import Buffer
    from protocol.messages import request_for_selection

    if framing.get("kind") == "ffhq":
        from engine.bench_faces import sample_photo

        image, (x0, y0, x1, y1) = sample_photo(argparse.Namespace(image=None, side=1024))
        sel = np.zeros(image.shape[:2], np.uint8)
        sel[y0:y1, x0:x1] = 255
        prompt = "a face with blonde hair"
    else:
        scene = render_scene(5, 384, 256, n_objects=3)
        _, sel = selection_for(scene, 0, "tight")
        image = scene.image
        color = "blue" if scene.objects[0].attrs["color"] != "blue" else "red"
        prompt = f"a {color} {scene.objects[0].attrs['shape']}"
    h, w = image.shape[:2]
    rgba = np.concatenate([image, np.full((h, w, 1), 255, np.uint8)], axis=2)
    request = request_for_selection(
        Buffer("layer", w, h, "rgba8", rgba.tobytes()), sel.tobytes(), framing,
        prompt=prompt, method=args.method, pack=args.pack, params=params, seed=1)
    return request, prompt


#: the models' entry points the stage clock times: (pack component, method name, stage)
TIMED = (("encoder", "features", "encoder backbone passes"),
         ("encoder", "map2style", "encoder style heads (CLIPInverter: 2 a pass)"),
         ("generator", "synthesis_from_styles", "generator renders"),
         ("clip", "encode_image", "CLIP image encodings"),
         ("clip", "encode_text", "CLIP text encodings (cached per text)"),
         ("clip", "text_features", "CLIP raw text features"))


class StageClock:
    """Wraps the pack's models' entry points with timers while in use (``with``), so one
    run of a method reports where its time went: calls and seconds per model."""

    def __init__(self, pack: Any) -> None:
        self.pack = pack
        self.calls: dict[str, int] = {}
        self.seconds: dict[str, float] = {}
        self._wrapped: list[tuple[Any, str]] = []

    def _wrap(self, obj: Any, name: str, stage: str) -> None:
        import torch

        real = getattr(obj, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            out = real(*args, **kwargs)
            if isinstance(out, torch.Tensor) and out.device.type == "cuda":
                torch.cuda.synchronize(out.device)
            self.calls[stage] = self.calls.get(stage, 0) + 1
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start
            return out

        object.__setattr__(obj, name, timed)  # an instance attribute shadows the method
        self._wrapped.append((obj, name))

    def __enter__(self) -> StageClock:
        for component, name, stage in TIMED:
            if self.pack.has(component):
                self._wrap(self.pack.get(component), name, stage)
        return self

    def __exit__(self, *_: Any) -> None:
        for obj, name in self._wrapped:
            obj.__dict__.pop(name, None)
        self._wrapped.clear()

    def report(self, total: float) -> list[str]:
        lines = [f"    {stage}: {self.calls[stage]} x, {self.seconds[stage]:.2f} s"
                 for _, _, stage in TIMED if stage in self.calls]
        other = total - sum(self.seconds.values())
        lines.append(f"    everything else (losses, optimiser, masks, paste advice): "
                     f"{max(other, 0.0):.2f} s")
        return lines


def _peak_rss_mb() -> float | None:
    try:
        import resource
    except ImportError:  # Windows
        return None
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_edit(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from engine.cli import private_engine, read_request_params
    from engine.packs import PackRegistry
    from engine.runner import EditRunner, frame_request, resolve_device

    repeats = max(1, args.repeats)
    extra = ["--device", args.device] if args.device != "auto" else []
    for folder in args.pack_dir:
        extra += ["--pack-dir", folder]
    variations = args.variations
    with tqdm(total=2 * repeats + 2 + (2 if variations > 1 else 0), desc="bench edit",
              unit="run") as bar:
        with private_engine(extra) as (client, launch_s):
            welcome = client.welcome
            pack_name = args.pack or welcome.default_pack
            pack_info = welcome.pack(pack_name or "")
            if pack_info is None:
                raise SystemExit(f"the engine has no pack {pack_name!r}")
            params = read_request_params(args.param, welcome, args.method, pack_name)
            request, prompt = _scene_request(pack_info.framing, args, params)
            t0 = time.perf_counter()
            client.edit(request)
            first_edit_s = time.perf_counter() - t0
            bar.update()
            previews, dones = [], []
            for _ in range(repeats):
                first_preview: list[float] = []
                start = time.perf_counter()

                def on_progress(p: Any, start: float = start, seen: list = first_preview) -> None:
                    if p.preview is not None and not seen:
                        seen.append(time.perf_counter() - start)

                result = client.edit(request, on_progress=on_progress)
                dones.append(time.perf_counter() - start)
                previews.append(first_preview[0] if first_preview else float("nan"))
                bar.update()
            together_s = apart_s = float("nan")
            if variations > 1:
                start = time.perf_counter()
                client.edit(dataclasses.replace(request, variations=variations))
                together_s = time.perf_counter() - start
                bar.update()
                start = time.perf_counter()
                for k in range(variations):
                    client.edit(dataclasses.replace(request, seed=request.seed + k))
                apart_s = time.perf_counter() - start
                bar.update()
            engine_rss = client.status().get("memory", {}).get("max_rss_kb")
        # the bare method, same request, in this process
        device = resolve_device(args.device)
        runner = EditRunner(PackRegistry.standard([Path(p) for p in args.pack_dir],
                                                  device=device), device)
        from engine import methods
        from engine.methods.base import CancelFlag, MethodInputs

        plan = runner.plan(request)
        pack = runner.packs.get(plan.pack)
        cls = methods.get(plan.method)
        assert cls is not None
        method = cls()
        for component in cls.components(pack):
            pack.get(component)
        framed = frame_request(request, pack.framing, pack.resolution)[0][0]  # as the engine
        params = {k: v for k, v in plan.params.items() if k not in ("paste", "feather")}
        inputs = MethodInputs(image=framed.image.to(device), mask=framed.mask.to(device),
                              prompt=request.prompt, params=params, seed=plan.seed, pack=pack,
                              device=device)
        method.run(inputs, lambda *a: None, CancelFlag())  # warm-up
        bar.update()
        bares, step_times = [], []
        for run in range(repeats):
            stamps: list[float] = []

            def stamp(done: int, total: int, message: str, preview: Any,
                      stamps: list[float] = stamps) -> None:
                if message.startswith("step "):  # the optimisers' own steps
                    stamps.append(time.perf_counter())

            clock = StageClock(pack)
            start = time.perf_counter()
            with torch.random.fork_rng(devices=[]), clock:
                method.run(inputs, stamp, CancelFlag())
            bares.append(time.perf_counter() - start)
            step_times += [b - a for a, b in itertools.pairwise(stamps)]
            if run == 0:
                stages = clock.report(bares[0])
            bar.update()
    done, bare = statistics.median(dones), statistics.median(bares)
    preview = statistics.median(previews)
    print(f"{plan.method} on pack {plan.pack}, {device}, prompt {prompt!r}, "
          f"{request.layer.width}x{request.layer.height} context crop, median of {repeats}")
    print(f"  warm engine: first preview {preview:.2f} s (goal <= 1 s), "
          f"done {done:.2f} s (goal <= 10 s)")
    print(f"  bare method in this process: {bare:.2f} s; engine overhead {done / bare:.2f}x "
          "(goal <= 1.3x)")
    print(f"  cold start: engine answered {launch_s:.2f} s after launch; first edit (pack load) "
          f"{first_edit_s:.2f} s")
    print(f"  where the bare method's first timed run went ({bares[0]:.2f} s):")
    for line in stages:
        print(line)
    if step_times:
        print(f"  one optimisation step: {statistics.median(step_times):.2f} s (median of "
              f"{len(step_times)})")
    own = _peak_rss_mb()
    memory = [f"this process (pack loaded, the bare runs) {own:.0f} MB"] if own else []
    if engine_rss:
        memory.append(f"the engine {engine_rss / 1024:.0f} MB")
    if device.type == "cuda":
        memory.append(f"CUDA {torch.cuda.max_memory_allocated(device) / 2**20:.0f} MB")
    if memory:
        print(f"  peak memory: {'; '.join(memory)}")
    if variations > 1:
        print(f"  {variations} variations in one request {together_s:.2f} s, as {variations} "
              f"requests {apart_s:.2f} s: {together_s / apart_s:.2f}x")
    info = result.info
    print(f"  last result: paste {info.get('paste')}, inversion {info.get('inversion_psnr')} dB, "
          f"clip similarity {info.get('clip_similarity_before')} -> {info.get('clip_similarity')}")
    return 0
