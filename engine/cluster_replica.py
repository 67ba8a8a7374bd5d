"""The edit runner as a Ray Serve deployment: one replica per GPU (or a few CPUs).

Imported only by an engine started with ``--cluster`` (and by Ray in the replicas it
starts): nothing else of the project imports Ray. A replica loads its packs once and keeps
them (:class:`engine.runner.EditRunner`); a job comes as a plain payload (the submit's
body and buffers, and the front's plan), runs through exactly the in-process pipeline, and
streams back what the front relays: progress steps with their previews, then the result or
an error. A cancelled stream sets the job's cancel flag, so the method stops at its next
step, as in the in-process engine.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from typing import Any

from ray import serve

from protocol.errors import ErrorCode, WordbrushError
from protocol.framing import Buffer, Limits, Message
from protocol.messages import parse_submit

#: what the stream yields: lists of items, each ("started", host, pid) | ("progress", step,
#: total, text, preview) | ("result", offset, patches, info) | ("error", code, message) |
#: ("cancelled",)
Item = tuple[Any, ...]


def buffer_tuple(buf: Buffer) -> tuple[str, int, int, str, bytes, str]:
    """A :class:`Buffer` as plain values (what crosses the Ray hop)."""
    return (buf.name, buf.width, buf.height, buf.format, bytes(memoryview(buf.data).cast("B")),
            buf.transfer)


def tuple_buffer(values: tuple[str, int, int, str, bytes, str]) -> Buffer:
    return Buffer(*values)


@serve.deployment(name="EditReplica")
class EditReplica:
    """One copy of the engine's runner (see the module docstring)."""

    def __init__(self, pack_dirs: list[str], device: str, extra_methods: list[str],
                 threads: int | None = None) -> None:
        import importlib
        from pathlib import Path

        import torch

        from engine.packs import PackRegistry
        from engine.runner import EditRunner, resolve_device

        for module in extra_methods:
            importlib.import_module(module)
        if threads:
            torch.set_num_threads(threads)
        where = resolve_device(device)
        self.runner = EditRunner(PackRegistry.standard([Path(p) for p in pack_dirs],
                                                       device=where), where)
        self.host, self.pid = socket.gethostname(), os.getpid()
        self.running = 0

    def where(self) -> dict[str, Any]:
        """Where this replica runs and what it holds (for ``info`` and ``status``)."""
        return {"host": self.host, "pid": self.pid, "running": self.running,
                "device": str(self.runner.device),
                "loaded_packs": {n: self.runner.packs.get(n).loaded()
                                 for n in self.runner.packs.names()}}

    async def run(self, payload: dict[str, Any]):  # an async generator: Serve streams it
        from engine.jobs import Job
        from engine.methods.base import Cancelled

        loop = asyncio.get_running_loop()
        items: asyncio.Queue[Item | None] = asyncio.Queue()
        plan = payload["plan"]
        message = Message("submit", payload["body"],
                          [tuple_buffer(b) for b in payload["buffers"]])
        request = parse_submit(message, Limits.from_dict(payload["limits"]))  # the front's
        job = Job(id=payload["job"], peer=b"", request=request, method=plan["method"],
                  pack=plan["pack"], params=plan["params"], seed=plan["seed"])

        def progress(step: int, total: int, text: str, preview: Buffer | None) -> None:
            item = ("progress", step, total, text,
                    None if preview is None else buffer_tuple(preview))
            loop.call_soon_threadsafe(items.put_nowait, item)

        def work() -> None:
            started = time.perf_counter()
            try:
                outcome = self.runner.run(job, progress)
                info = {**outcome.info, "replica": f"{self.host}:{self.pid}",
                        "replica_ms": round((time.perf_counter() - started) * 1000, 1)}
                item: Item = ("result", list(outcome.offset),
                              [buffer_tuple(p) for p in outcome.patches], info)
            except Cancelled:
                item = ("cancelled",)
            except WordbrushError as exc:
                item = ("error", exc.code.value, exc.message)
            except Exception as exc:  # the method's failure: the job's error, not the replica's
                item = ("error", ErrorCode.METHOD_FAILED.value,
                        f"the edit failed: {type(exc).__name__}: {exc}")
            loop.call_soon_threadsafe(items.put_nowait, item)
            loop.call_soon_threadsafe(items.put_nowait, None)

        self.running += 1
        items.put_nowait(("started", self.host, self.pid))
        worker = threading.Thread(target=work, name=f"edit-{job.id}", daemon=True)
        worker.start()
        try:
            # each yield crosses the hop as one object: what is ready goes together (a
            # one-pass edit's steps and result are one or two)
            done = False
            while not done:
                batch = [await items.get()]
                while not items.empty():
                    batch.append(items.get_nowait())
                done = batch[-1] is None
                yield [item for item in batch if item is not None]
        finally:  # the stream was cancelled (or ended): stop the job at its next step
            job.cancel.set()
            self.running -= 1
