"""``wordbrush bench``: performance figures as ratios measured in the same run.

``protocol``: a WxW RGBA8 layer sent through the real framing code (encode, zero-copy
send, size-checked decode) to an echo peer with the engine's socket options, and back,
over ipc, over ipc with the shared-memory rings a local engine and client agree on
(:mod:`protocol.shm`), and over tcp loopback. Reported as GB/s (2 x bytes / round trip)
and as a ratio to a numpy memcpy of the same bytes measured in the same run.

``models``: forward times of the full-size models (see :mod:`engine.bench_models`).

``edit``: one edit on a warm engine (first preview, done), the bare method time in the same
run, and the cold start (see :mod:`engine.bench_edit`).

``load``: N clients x M edits on one engine: throughput and latency percentiles
(see :mod:`engine.bench_load`).

``faces``: finding and aligning a face in a 2048 px photo (see :mod:`engine.bench_faces`).

``cluster``: the Ray hop's overhead and two replicas against one (see
:mod:`engine.bench_cluster`).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from typing import Any

import numpy as np
import zmq

from protocol import shm
from protocol.framing import Buffer, Limits, Message, decode, encode


def memcpy_rate(nbytes: int, repeats: int) -> float:
    """Bytes per second of a numpy copy of ``nbytes`` (median of ``repeats``)."""
    src = np.random.default_rng(0).integers(0, 255, nbytes, dtype=np.uint8)
    dst = np.empty_like(src)
    np.copyto(dst, src)  # fault the pages in before timing
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        np.copyto(dst, src)
        times.append(time.perf_counter() - start)
    return nbytes / statistics.median(times)


def _echo(ctx: zmq.Context, endpoint: str, limits: Limits, ready: threading.Event,
          stop: threading.Event, bound: list[str], offer: dict[str, Any] | None) -> None:
    link = shm.SharedLink.accept(offer) if offer is not None else None
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.MAXMSGSIZE, limits.max_frame_bytes + 65536)
    sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind(endpoint)
    bound.append(sock.getsockopt_string(zmq.LAST_ENDPOINT))
    ready.set()
    try:
        while not stop.is_set():
            if not sock.poll(100):
                continue
            frames = sock.recv_multipart(copy=False)
            request = decode(frames[1:], limits, link.reader if link else None)
            reply = Message("result", {"job": request.id}, request.buffers, ref=request.id)
            out = encode(reply, limits)
            if link is not None:
                out = link.writer.place_frames(out)
            sock.send_multipart([frames[0], *out], copy=False)
            del request, reply, out
    finally:
        sock.close()
        if link is not None:
            link.close()


def roundtrip_seconds(endpoint: str, side: int, repeats: int, shared: bool = False) -> float:
    ctx = zmq.Context()
    limits = Limits(max_frame_bytes=max(side * side * 4, 1 << 20), max_side=max(side, 8192))
    ready, stop, bound = threading.Event(), threading.Event(), []
    link, offer = (None, None)
    if shared:
        link, offer = shm.SharedLink.offer(max(shm.DEFAULT_CAPACITY, 2 * side * side * 4))
    thread = threading.Thread(target=_echo,
                              args=(ctx, endpoint, limits, ready, stop, bound, offer),
                              daemon=True)
    thread.start()
    ready.wait(5)
    if link is not None:
        link.unlink()
    dealer = ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.connect(bound[0])
    pixels = np.random.default_rng(1).integers(0, 255, side * side * 4, dtype=np.uint8)
    times = []
    try:
        for i in range(repeats + 1):
            message = Message("submit", {"prompt": "bench"},
                              [Buffer("layer", side, side, "rgba8", pixels)])
            start = time.perf_counter()
            frames = encode(message, limits)
            if link is not None:
                frames = link.writer.place_frames(frames)
            dealer.send_multipart(frames, copy=False)
            reply = decode(dealer.recv_multipart(copy=False), limits,
                           link.reader if link else None)
            elapsed = time.perf_counter() - start
            if reply.buffers[0].data.nbytes != pixels.nbytes:
                raise RuntimeError("the echo returned the wrong number of bytes")
            if shared and len(frames) != 2:
                raise RuntimeError("the layer did not go through shared memory")
            del reply, frames
            if i > 0:  # the first trip sets up the connection (and the rings' memory)
                times.append(elapsed)
    finally:
        stop.set()
        thread.join(2)
        dealer.close()
        ctx.term()
        if link is not None:
            link.close()
    return statistics.median(times)


def bench_protocol(side: int, repeats: int) -> list[dict[str, Any]]:
    from tqdm import tqdm

    nbytes = side * side * 4
    rows = []
    transports = [("ipc", "ipc", False), ("tcp", "tcp", False)]
    if shm.supported():
        transports.insert(1, ("ipc+shm", "ipc", True))
    with tqdm(total=1 + len(transports), desc="bench protocol", unit="part") as bar:
        copy_rate = memcpy_rate(nbytes, repeats * 2)
        bar.update()
        with tempfile.TemporaryDirectory(prefix="wordbrush-bench-") as tmp:
            for transport, kind, shared in transports:
                endpoint = f"ipc://{tmp}/bench.sock" if kind == "ipc" else "tcp://127.0.0.1:*"
                rtt = roundtrip_seconds(endpoint, side, repeats, shared)
                rate = 2 * nbytes / rtt
                rows.append({"transport": transport, "bytes": nbytes, "rtt_ms": rtt * 1000,
                             "gb_s": rate / 1e9, "memcpy_gb_s": copy_rate / 1e9,
                             "ratio": rate / copy_rate})
                bar.update()
    return rows


def run_bench(args: argparse.Namespace) -> int:
    if args.what == "protocol":
        args.side = args.side or 4096
        rows = bench_protocol(args.side, args.repeats)
        print(f"{args.side}x{args.side} RGBA8 round trip ({rows[0]['bytes'] / 2**20:.0f} MiB "
              f"each way), median of {args.repeats}; memcpy {rows[0]['memcpy_gb_s']:.2f} GB/s")
        print(f"{'transport':<10}{'round trip':>12}{'GB/s':>8}{'x memcpy':>10}")
        for row in rows:
            print(f"{row['transport']:<10}{row['rtt_ms']:>10.1f}ms{row['gb_s']:>8.2f}"
                  f"{row['ratio']:>10.2f}")
        return 0
    if args.what == "edit":
        from .bench_edit import bench_edit

        return bench_edit(args)
    if args.what == "preview":
        from .bench_preview import bench_preview

        return bench_preview(args)
    if args.what == "load":
        from .bench_load import bench_load

        return bench_load(args)
    if args.what == "faces":
        from .bench_faces import bench_faces

        return bench_faces(args)
    if args.what == "cluster":
        from .bench_cluster import bench_cluster

        return bench_cluster(args)
    from .bench_models import bench_models

    return bench_models(args)
