"""``wordbrush bench load``: N clients x M edits against one engine on the demo pack.

Each client is a thread with its own connection, submitting edits of a scene one after
another (different seeds). Reported: throughput (edits per second), latency p50 / p99
(submit to result, queueing included), and the single-client latency measured in the same
run as the baseline the ratio is taken against.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import threading
import time

import numpy as np


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def bench_load(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from engine.bench_edit import _scene_request
    from engine.cli import private_engine
    from protocol.client import EngineClient

    clients, edits = max(1, args.clients), max(1, args.edits)
    extra = ["--device", args.device] if args.device != "auto" else []
    extra += ["--max-queue", str(max(8, clients * 2))]
    with private_engine(extra) as (first, _):
        welcome = first.welcome
        pack = welcome.pack(args.pack or welcome.default_pack or "")
        if pack is None:
            raise SystemExit(f"the engine has no pack {args.pack!r}")
        request, prompt = _scene_request(pack.framing, args)
        first.edit(request)  # warm: the pack is loaded
        baseline = []
        for _ in range(3):
            t0 = time.perf_counter()
            first.edit(request)
            baseline.append(time.perf_counter() - t0)
        latencies: list[float] = []
        errors: list[str] = []
        lock = threading.Lock()
        bar = tqdm(total=clients * edits, desc="bench load", unit="edit")

        def worker(index: int) -> None:
            with EngineClient(first.endpoint, progress_timeout=120) as client:
                client.connect()
                for j in range(edits):
                    req = dataclasses.replace(request, seed=index * 1000 + j)
                    t0 = time.perf_counter()
                    try:
                        client.edit(req)
                    except Exception as exc:
                        with lock:
                            errors.append(f"{type(exc).__name__}: {exc}")
                        continue
                    with lock:
                        latencies.append(time.perf_counter() - t0)
                        bar.update(1)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - start
        bar.close()
    single = statistics.median(baseline)
    print(f"{clients} clients x {edits} edits of {prompt!r} ({request.method or 'default'} "
          f"method), one engine")
    print(f"  throughput {len(latencies) / wall:.2f} edits/s over {wall:.1f} s; "
          f"{len(errors)} errors")
    print(f"  latency p50 {_percentile(latencies, 50):.2f} s, p99 {_percentile(latencies, 99):.2f}"
          f" s; one client alone {single:.2f} s (p50 / alone = "
          f"{_percentile(latencies, 50) / single:.2f}x)")
    for e in errors[:5]:
        print(f"  error: {e}")
    return 0 if not errors else 1

