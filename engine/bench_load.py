"""``wordbrush bench load``: N clients x M edits against one engine on the demo pack.

Each client is a thread with its own connection, submitting edits of a scene one after
another (different seeds). Reported: throughput (edits per second), latency p50 / p99
(submit to result, queueing included), and the single-client latency measured in the same
run as the baseline the ratio is taken against.

``--fair``: two artists on one engine. One sends a batch of ``--batch`` edits (20 by
default; as many in flight as the engine lets one client hold, the next sent as each
finishes); the other one edit every second, ``--edits`` times. Reported: the second's wait
(submit to result), median and worst, against its wait on the idle engine measured first
in the same run. The engine serves clients in turn, so the goal is a worst wait of at most
two edits' time (the first's edit that is running, then its own).
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


def bench_fair(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from engine.bench_edit import _scene_request
    from engine.cli import private_engine, read_request_params
    from protocol.client import EngineClient
    from protocol.errors import EngineRejected, ErrorCode

    extra = ["--device", args.device] if args.device != "auto" else []
    batch, edits = max(1, args.batch), max(1, args.edits)
    with private_engine(extra) as (artist, _):
        welcome = artist.welcome
        pack = welcome.pack(args.pack or welcome.default_pack or "")
        if pack is None:
            raise SystemExit(f"the engine has no pack {args.pack!r}")
        params = read_request_params(args.param, welcome, args.method, pack.name)
        request, prompt = _scene_request(pack.framing, args, params)
        artist.edit(request)  # warm: the pack is loaded

        def timed_edit(client: EngineClient, seed: int) -> float:
            t0 = time.perf_counter()
            client.edit(dataclasses.replace(request, seed=seed))
            return time.perf_counter() - t0

        idle = [timed_edit(artist, 9000 + k) for k in range(3)]
        hold = args.hold
        waits: list[float] = []
        batch_done: list[float] = []
        bar = tqdm(total=batch + edits, desc="bench load --fair", unit="edit")

        def batch_artist() -> None:
            with EngineClient(artist.endpoint, progress_timeout=300) as client:
                client.connect()
                in_flight: list[str] = []
                sent = 0
                while sent < batch or in_flight:
                    while sent < batch and len(in_flight) < hold:
                        in_flight.append(client.submit(dataclasses.replace(request,
                                                                           seed=sent)))
                        sent += 1
                    try:
                        client.wait(in_flight.pop(0))
                        batch_done.append(time.perf_counter())
                    except EngineRejected as exc:  # the engine's share was full: send again
                        if exc.code is not ErrorCode.QUEUE_FULL:
                            raise
                        sent -= 1
                    bar.update(1)

        thread = threading.Thread(target=batch_artist)
        start = time.perf_counter()
        thread.start()
        with EngineClient(artist.endpoint, progress_timeout=300) as other:
            other.connect()
            for k in range(edits):
                time.sleep(max(0.0, start + 1.0 * (k + 1) - time.perf_counter()))
                waits.append(timed_edit(other, 5000 + k))
                bar.update(1)
        thread.join()
        bar.close()
    one = statistics.median(idle)
    print(f"two artists, one engine: {batch} edits in a batch against {edits} one a second "
          f"({request.method or 'the default method'}, {prompt!r})")
    print(f"  one edit on the idle engine: {one:.2f} s (median of {len(idle)})")
    print(f"  the second artist's wait: median {statistics.median(waits):.2f} s, worst "
          f"{max(waits):.2f} s = {max(waits) / one:.2f} edits' time (goal <= 2)")
    print(f"  the batch finished {batch_done[-1] - start:.1f} s after it started" if batch_done
          else "  the batch finished nothing")
    return 0


def bench_load(args: argparse.Namespace) -> int:
    if args.fair:
        return bench_fair(args)
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
        request, prompt = _scene_request(pack.framing, args, {})
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

