"""``wordbrush bench cluster``: what the Ray hop costs, and what a second replica gives.

In one run, on the demo pack's CLIPInverter edits (``--method`` for another):

* the in-process engine against the same engine in front of one replica of two CPUs:
  the median edit, one at a time, and their ratio (the hop's overhead; goal <= 1.15x);
* one replica of one CPU against two of one CPU each: edits per second with four clients
  sending at once, and the ratio (on a two-core machine the CPU is the limit: expect
  well under 2x).

Without ``--cluster ADDRESS`` the bench starts a local Ray cluster of two CPUs for itself
(``ray start --head``, with Ray's files in a temporary HOME) and stops it afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def local_cluster(cpus: int = 2, extra_env: dict[str, str] | None = None
                  ) -> Iterator[tuple[str, dict[str, str]]]:
    """A one-node Ray cluster for this run: ``(address, the environment to reach it)``;
    Ray writes its token under a temporary HOME. ``extra_env`` reaches its workers too (a
    PYTHONPATH for methods that live outside the engine)."""
    home = tempfile.mkdtemp(prefix="wordbrush-ray-")
    env = {"HOME": home, "RAY_USAGE_STATS_ENABLED": "0", **(extra_env or {})}
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ray = str(Path(sys.executable).with_name("ray"))
    full = {**os.environ, **env}
    subprocess.run([ray, "start", "--head", "--num-cpus", str(cpus), "--port", str(port),
                    "--include-dashboard=false", "--disable-usage-stats"], env=full,
                   check=True, capture_output=True, timeout=180)
    try:
        yield f"127.0.0.1:{port}", env
    finally:
        subprocess.run([ray, "stop", "--force"], env=full, capture_output=True, timeout=180)


def _edits(client: Any, request: Any, n: int) -> tuple[list[float], list[float]]:
    """Each edit's time at the client, and the replica's own time where it reports one."""
    times, replica = [], []
    for k in range(n):
        start = time.perf_counter()
        result = client.edit(dataclasses.replace(request, seed=k))
        times.append(time.perf_counter() - start)
        if "replica_ms" in result.info:
            replica.append(result.info["replica_ms"] / 1000)
    return times, replica


def _throughput(client: Any, request: Any, clients: int, each: int) -> float:
    from protocol.client import EngineClient

    def artist(k: int) -> None:
        with EngineClient(client.endpoint, progress_timeout=300) as own:
            own.connect()
            jobs = [own.submit(dataclasses.replace(request, seed=k * 100 + j))
                    for j in range(each)]
            for job in jobs:
                own.wait(job)

    threads = [threading.Thread(target=artist, args=(k,)) for k in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return clients * each / (time.perf_counter() - start)


def bench_cluster(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from engine.bench_edit import _scene_request
    from engine.cli import private_engine, read_request_params

    repeats = max(3, args.repeats)
    with contextlib.ExitStack() as stack:
        if args.cluster:
            address, env = args.cluster, {}
        else:
            address, env = stack.enter_context(local_cluster())
        os.environ.update(env)  # the engines started below reach the cluster with it
        bar = tqdm(total=4, desc="bench cluster", unit="engine")
        with private_engine(["--device", "cpu"]) as (client, _):
            welcome = client.welcome
            pack = welcome.pack(args.pack or welcome.default_pack or "")
            params = read_request_params(args.param, welcome, args.method, pack.name)
            request, prompt = _scene_request(pack.framing, args, params)
            client.edit(request)  # the pack loaded
            local, _ = _edits(client, request, repeats)
        bar.update()
        cluster = ["--cluster", address, "--min-replicas", "1", "--device", "cpu"]
        with private_engine([*cluster, "--max-replicas", "1", "--cpus-per-replica", "2"],
                            start_timeout=300) as (client, _):
            client.edit(request)  # the replica up, its pack loaded
            hop, inside = _edits(client, request, repeats)
        bar.update()
        rates = {}
        for replicas in (1, 2):
            with private_engine([*cluster, "--min-replicas", str(replicas), "--max-replicas",
                                 str(replicas), "--cpus-per-replica", "1"],
                                start_timeout=300) as (client, _):
                _throughput(client, request, replicas * 2, 1)  # every replica warm
                rates[replicas] = _throughput(client, request, 4, args.edits)
            bar.update()
        bar.close()
    one, through = statistics.median(local), statistics.median(hop)
    ran = statistics.median(inside)
    print(f"{request.method or 'the default method'} on pack {pack.name}, {prompt!r}; cluster "
          f"{address if args.cluster else 'started for this run: one node, 2 CPUs'}; "
          f"medians of {repeats}")
    print(f"  one edit: in-process engine {one * 1000:.0f} ms; through the cluster (one replica "
          f"of 2 CPUs) {through * 1000:.0f} ms at the client, {ran * 1000:.0f} ms of it in the "
          f"replica's runner")
    print(f"  the hop (client to front to replica and back, beyond the replica's own time): "
          f"{(through - ran) * 1000:.0f} ms, {through / ran:.2f}x the replica's time (goal <= "
          f"1.15x); end to end against the in-process engine {through / one:.2f}x (the "
          "replica shares the two cores with Ray's own processes)")
    print(f"  4 clients x {args.edits} edits: one replica of 1 CPU {rates[1]:.2f} edits/s, two "
          f"{rates[2]:.2f} edits/s: {rates[2] / rates[1]:.2f}x (this machine has "
          f"{os.cpu_count()} cores: the CPU is the limit)")
    return 0
