"""Several GPU boxes behind one endpoint: the engine's jobs run on a Ray Serve deployment.

The front stays the ZeroMQ engine (:mod:`engine.server`): the same endpoint, protocol,
CURVE allow-list, job ownership, fair queue, progress, cancel, fetch and error codes. Only
the running moves: :class:`ClusterRunner` plans a request as the in-process runner does
(from the packs' manifests: the front loads no model) and runs it on a replica of
:class:`engine.cluster_replica.EditReplica`, streaming its progress back. The server
gives the front as many workers as the replicas can take at once, so Serve's autoscaling
sees the queue and adds replicas (between ``min_replicas`` and ``max_replicas``, aiming
at ``target_ongoing`` requests each).

Faults: a replica that dies mid-job (its process killed, its GPU lost) costs that job one
retry on another replica; a second death fails it with ``method_failed`` and a sentence
that says a worker died. A cluster that cannot be reached at start is a one-line error;
a job whose stream says nothing for ``answer_timeout`` seconds (the cluster lost, no
replica able to start) fails with a sentence instead of hanging.

This module imports Ray only when a :class:`ClusterRunner` is made: an engine started
without ``--cluster``, and any plugins-only install, never needs it.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from protocol.errors import ErrorCode, WordbrushError
from protocol.framing import Limits

from .jobs import Job
from .methods.base import Cancelled
from .runner import EditRunner
from .server import JobOutcome, JobPlan, JobProgress

log = logging.getLogger("wordbrush.engine")

__all__ = ["ClusterConfig", "ClusterRunner", "ClusterUnavailable"]

APP_NAME = "wordbrush"
#: how often the replicas' whereabouts are read for ``info`` and ``status`` (in the
#: background: the I/O thread answers from the last read)
WHEREABOUTS_SECONDS = 5.0


class ClusterUnavailable(WordbrushError):
    code = ErrorCode.ENGINE_UNAVAILABLE


class WorkerDied(Exception):
    """The replica running a job went away (its process, its node)."""


@dataclass
class ClusterConfig:
    """How the deployment is made; ``wordbrush serve --cluster ...`` flags, or a JSON file
    with these keys (``--cluster-config``)."""

    address: str = "auto"  # "auto", "HOST:PORT" of a head node, or "ray://HOST:PORT"
    min_replicas: int = 1
    max_replicas: int = 2
    target_ongoing: float = 1.0  # Serve's target ongoing requests per replica
    gpus_per_replica: float = 0.0
    cpus_per_replica: float = 1.0
    #: a job whose stream says nothing for this long fails (a lost cluster, a replica that
    #: cannot start): longer than a replica's start with its packs
    answer_timeout: float = 180.0
    pack_dirs: list[str] = field(default_factory=list)
    device: str = "auto"
    extra_methods: list[str] = field(default_factory=list)

    @classmethod
    def from_file(cls, path: Path, **overrides: Any) -> ClusterConfig:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise WordbrushError(f"cannot read the cluster config {path}: {exc}") from None
        unknown = set(data) - set(cls.__dataclass_fields__)
        if not isinstance(data, dict) or unknown:
            raise WordbrushError(f"{path}: unknown keys {sorted(unknown)}; known: "
                                 f"{', '.join(cls.__dataclass_fields__)}")
        return cls(**{**data, **{k: v for k, v in overrides.items() if v is not None}})

    def check(self) -> None:
        if not 1 <= self.min_replicas <= self.max_replicas:
            raise WordbrushError("the cluster needs 1 <= min replicas <= max replicas, not "
                                 f"{self.min_replicas} and {self.max_replicas}")
        if self.target_ongoing <= 0 or self.gpus_per_replica < 0 or self.cpus_per_replica <= 0:
            raise WordbrushError("target ongoing requests and CPUs per replica must be "
                                 "positive, GPUs per replica not negative")


def _check_reachable(address: str, timeout: float = 3.0) -> None:
    """A head's HOST:PORT (or ``ray://HOST:PORT``) that takes no connection is refused at
    once: Ray itself would retry for minutes. ``auto`` is Ray's to find."""
    import socket

    target = address.removeprefix("ray://")
    host, _, port = target.rpartition(":")
    if address == "auto" or not host or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ClusterUnavailable(
            f"cannot reach the Ray cluster at {address!r}: nothing answers there ({exc}); "
            "start one with `ray start --head`, or give its HOST:PORT") from None


def _payload(job: Job, limits: Limits) -> dict[str, Any]:
    from .cluster_replica import buffer_tuple

    assert job.request is not None
    message = job.request.to_message(job.id)
    return {"job": job.id, "body": message.body, "limits": limits.to_dict(),
            "buffers": [buffer_tuple(b) for b in message.buffers],
            "plan": {"method": job.method, "pack": job.pack, "params": job.params,
                     "seed": job.seed}}


class ClusterRunner:
    """The server's :class:`~engine.server.Runner`, running jobs on the cluster."""

    def __init__(self, local: EditRunner, config: ClusterConfig, limits: Limits) -> None:
        config.check()
        import ray
        from ray import serve

        from .cluster_replica import EditReplica

        self.local, self.config, self.limits = local, config, limits
        _check_reachable(config.address)
        try:
            ray.init(address=config.address, logging_level=logging.WARNING,
                     log_to_driver=False)
        except Exception as exc:  # ConnectionError, RuntimeError, ...: one line
            raise ClusterUnavailable(
                f"cannot reach the Ray cluster at {config.address!r}: "
                f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__} (start "
                "one with `ray start --head`, or give its HOST:PORT)") from None
        serve.start(http_options={"location": "NoServer"})  # only the ZeroMQ port faces out
        deployment = EditReplica.options(
            max_ongoing_requests=1,
            autoscaling_config={"min_replicas": config.min_replicas,
                                "max_replicas": config.max_replicas,
                                "target_ongoing_requests": config.target_ongoing,
                                "upscale_delay_s": 2.0, "downscale_delay_s": 60.0},
            ray_actor_options={"num_gpus": config.gpus_per_replica,
                               "num_cpus": config.cpus_per_replica})
        threads = max(1, round(config.cpus_per_replica)) if not config.gpus_per_replica \
            else None
        self.handle = serve.run(
            deployment.bind(config.pack_dirs, config.device, config.extra_methods, threads),
            name=APP_NAME, route_prefix=None, blocking=False)
        self._deployment: dict[str, Any] = {"status": "starting"}
        #: "host:pid" of each replica that ran a job -> its jobs now, done, last seen
        self._replicas_seen: dict[str, dict[str, Any]] = {}
        self._seen_lock = threading.Lock()
        self._stop = threading.Event()
        threading.Thread(target=self._watch, name="wordbrush-cluster-watch",
                         daemon=True).start()
        log.info("cluster ready address=%s replicas=%s..%s", config.address,
                 config.min_replicas, config.max_replicas)

    # ------------------------------------------------------------------ the Runner

    @property
    def workers(self) -> int:
        """Jobs the front sends at once: what the largest deployment can take."""
        return max(1, round(self.config.max_replicas * self.config.target_ongoing))

    def plan(self, request: Any) -> JobPlan:
        return self.local.plan(request)

    def describe(self) -> dict[str, Any]:
        info = self.local.describe()
        count = self._replicas_running()
        info["device"] = (f"cluster {self.config.address} ({count} replica"
                          f"{'s' if count != 1 else ''}, {self.config.min_replicas}.."
                          f"{self.config.max_replicas})")
        return info

    def status(self) -> dict[str, Any]:
        return {"device": "cluster", "cluster": {"address": self.config.address,
                                                 "config": asdict(self.config),
                                                 **self._whereabouts()}}

    def run(self, job: Job, progress: JobProgress) -> JobOutcome:
        for attempt in (1, 2):
            try:
                return self._run_once(job, progress)
            except WorkerDied as exc:
                if attempt == 2:
                    raise WordbrushError(
                        f"the edit failed: a worker died twice while running it ({exc}); "
                        "the other jobs go on: try again", code=ErrorCode.METHOD_FAILED
                    ) from None
                log.warning("job.retry job=%s reason=worker died (%s)", job.id, exc)
                progress(0, 1, "a worker died: starting again on another", None)
        raise AssertionError("unreachable")

    def _run_once(self, job: Job, progress: JobProgress) -> JobOutcome:
        from .cluster_replica import tuple_buffer

        items: queue.Queue[tuple[Any, ...]] = queue.Queue()
        stream = self.handle.options(stream=True).run.remote(_payload(job, self.limits))

        def pump() -> None:
            import ray

            try:
                for batch in stream:
                    for item in batch:
                        items.put(item)
                items.put(("end", "its stream ended early"))
            except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as exc:
                items.put(("died", type(exc).__name__))
            except Exception as exc:  # the stream broke otherwise (a cancel, a lost cluster)
                items.put(("broken", f"{type(exc).__name__}: {exc}"))

        threading.Thread(target=pump, name=f"wordbrush-stream-{job.id}", daemon=True).start()
        heard = time.monotonic()
        cancelled = False
        where: str | None = None
        try:
            while True:
                if job.cancel.is_set() and not cancelled:
                    cancelled = True  # the replica stops at its next step
                    stream.cancel()
                try:
                    item = items.get(timeout=0.1)
                except queue.Empty:
                    if cancelled and time.monotonic() - heard > 5.0:
                        raise Cancelled() from None
                    if time.monotonic() - heard > self.config.answer_timeout:
                        stream.cancel()
                        raise WordbrushError(
                            f"the cluster at {self.config.address} has not answered for "
                            f"{self.config.answer_timeout:.0f} s (lost, or no replica could "
                            "start); nothing was changed", code=ErrorCode.METHOD_FAILED
                        ) from None
                    continue
                heard = time.monotonic()
                kind = item[0]
                if kind == "started":
                    where = f"{item[1]}:{item[2]}"
                    self._seen(where, +1)
                elif kind == "progress":
                    _, step, total, text, preview = item
                    progress(step, total, text,
                             None if preview is None else tuple_buffer(preview))
                elif kind == "result":
                    _, offset, patches, info = item
                    return JobOutcome(offset=(int(offset[0]), int(offset[1])),
                                      patches=[tuple_buffer(p) for p in patches], info=info)
                elif kind == "error":
                    raise WordbrushError(item[2], code=ErrorCode.parse(item[1]))
                elif cancelled or job.cancel.is_set():  # cancelled, or the stream stopped
                    raise Cancelled()
                else:  # died, broken, or ended without a result
                    raise WorkerDied(item[1])
        finally:
            if where is not None:
                self._seen(where, -1, finished=True)

    # ------------------------------------------------------------------ whereabouts

    def _seen(self, where: str, change: int, finished: bool = False) -> None:
        """A replica (``host:pid``, from its stream's first item) took a job (+1) or is
        done with one (-1)."""
        with self._seen_lock:
            entry = self._replicas_seen.setdefault(where, {"jobs": 0, "done": 0})
            entry["jobs"] += change
            entry["done"] += int(finished)
            entry["last_seen"] = round(time.time(), 1)

    def _watch(self) -> None:
        """Read the deployment's replica states every few seconds (in the background: the
        I/O thread answers ``info`` and ``status`` from the last read)."""
        from ray import serve

        while True:
            try:
                app = serve.status().applications[APP_NAME]
                states = {name: dict(d.replica_states) for name, d in app.deployments.items()}
                self._deployment = {"status": str(app.status.value), "replicas": states}
            except Exception as exc:  # the cluster is busy or gone: say so, keep serving
                self._deployment = {"status": "unknown", "error": str(exc)[:200]}
            if self._stop.wait(WHEREABOUTS_SECONDS):
                return

    def _replicas_running(self) -> int:
        states = self._deployment.get("replicas") or {}
        return sum(s.get("RUNNING", 0) for s in states.values())

    def _whereabouts(self) -> dict[str, Any]:
        with self._seen_lock:
            seen = {k: dict(v) for k, v in self._replicas_seen.items()}
        return {"deployment": self._deployment, "replicas_running": self._replicas_running(),
                "replicas_seen": seen}

    def close(self) -> None:
        self._stop.set()
