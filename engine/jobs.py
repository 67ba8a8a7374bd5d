"""Jobs: the bounded queue, the job table (idempotent by id) and kept results.

Shared by the server's I/O thread and its worker, so every method takes the lock.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from protocol.messages import EditRequest

from .methods.base import CancelFlag


class JobState(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobState.DONE, JobState.FAILED, JobState.CANCELLED)


@dataclass
class Job:
    id: str
    peer: bytes  # ROUTER identity of the client to report to (updated on re-attach)
    request: EditRequest | None  # dropped when the job finishes (see _finish_locked)
    method: str
    pack: str | None
    params: dict[str, Any]
    seed: int
    state: JobState = JobState.QUEUED
    cancel: CancelFlag = field(default_factory=CancelFlag)
    created: float = field(default_factory=time.monotonic)
    started: float | None = None
    finished_at: float | None = None
    last_sent: float = field(default_factory=time.monotonic)
    last_progress: float | None = None  # when the method last reported a step (running)
    stalled: bool = False  # no step for the server's STALL_SECONDS: heartbeats say so
    step: int = 0
    total: int = 0
    final_frames: list[Any] | None = None  # the encoded result/cancelled/error, re-sendable
    final_nbytes: int = 0
    #: who submitted it: the CURVE key's User-Id on an encrypted engine ("" elsewhere);
    #: only the same key may fetch or cancel it
    owner: str = ""
    #: whose turn it waits for in the fair queue: the owner's key where there is one, else
    #: the connection that submitted it
    client: str = ""


class QueueFull(Exception):
    pass


#: how many clients' last turns are remembered once their queues are empty
SERVED_MEMORY = 1024


class JobBook:
    """All jobs the engine knows: queued, running, and finished ones kept for re-fetch.

    Waiting jobs are queued per client (its CURVE key on a network engine, its connection
    locally: :attr:`Job.client`) and served in turn: the next job is the first of the
    client that has waited longest since its last turn (one never served goes first). So
    an artist who sends twenty edits does not make another wait for them: the other's
    edit starts after at most the one that is running. ``max_queue`` caps the jobs
    waiting in all, ``max_per_client`` what one client may have waiting.
    """

    def __init__(self, max_queue: int = 32, keep_seconds: float = 600.0,
                 keep_bytes: int = 512 * 1024 * 1024, max_per_client: int = 8) -> None:
        if max_queue < 1 or max_per_client < 1:
            raise ValueError("the queue must hold at least one job, in all and per client")
        self.max_queue = max_queue
        self.max_per_client = max_per_client
        self.keep_seconds = keep_seconds
        self.keep_bytes = keep_bytes
        self._lock = threading.Condition()
        self._jobs: dict[str, Job] = {}
        self._queues: dict[str, deque[Job]] = {}  # client -> its waiting jobs, oldest first
        self._turn = 0  # counts the jobs started
        self._served: OrderedDict[str, int] = OrderedDict()  # client -> its last turn
        self._finished: OrderedDict[str, Job] = OrderedDict()
        self._finished_bytes = 0
        #: the jobs running now, oldest first: one on an in-process engine, up to the
        #: cluster's replicas on a clustered one
        self._running: list[Job] = []
        self._closed = False

    @property
    def running(self) -> Job | None:
        """The oldest running job (the only one on an in-process engine)."""
        with self._lock:
            return self._running[0] if self._running else None

    def running_jobs(self) -> list[Job]:
        with self._lock:
            return list(self._running)

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def _next_client_locked(self, queues: dict[str, deque[Job]], served: dict[str, int]
                            ) -> str:
        return min(queues, key=lambda c: (served.get(c, -1), queues[c][0].created))

    def _order_locked(self) -> list[Job]:
        """The waiting jobs in the order they will start (if nothing else arrives)."""
        queues = {c: deque(q) for c, q in self._queues.items()}
        served = dict(self._served)
        turn = self._turn
        order = []
        while queues:
            client = self._next_client_locked(queues, served)
            order.append(queues[client].popleft())
            turn += 1
            served[client] = turn
            if not queues[client]:
                del queues[client]
        return order

    def position(self, job: Job) -> int:
        """0 = running, 1 = next, ...; -1 once finished."""
        with self._lock:
            if job.state is JobState.RUNNING:
                return 0
            try:
                return self._order_locked().index(job) + 1
            except ValueError:
                return -1

    def queued(self) -> list[Job]:
        """The waiting jobs, next first."""
        with self._lock:
            return self._order_locked()

    def _waiting_locked(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def add(self, job: Job) -> int:
        """Queue a new job; return its position. Raises QueueFull."""
        with self._lock:
            if self._closed:
                raise QueueFull("the engine is shutting down")
            own = self._queues.get(job.client)
            if own is not None and len(own) >= self.max_per_client:
                raise QueueFull(
                    f"you have {len(own)} edits waiting on this engine, as many as one client "
                    "may; the next is taken once one of them starts")
            if self._waiting_locked() >= self.max_queue:
                raise QueueFull(
                    f"the engine's queue is full ({self.max_queue} jobs waiting); try again soon"
                )
            self._jobs[job.id] = job
            self._queues.setdefault(job.client, deque()).append(job)
            self._lock.notify()
            return self._order_locked().index(job) + 1

    def take(self, timeout: float | None = None) -> Job | None:
        """Worker side: the next queued job (now RUNNING), or None on timeout/close."""
        with self._lock:
            end = None if timeout is None else time.monotonic() + timeout
            while not self._queues and not self._closed:
                remaining = None if end is None else end - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._lock.wait(remaining)
            if self._closed and not self._queues:
                return None
            client = self._next_client_locked(self._queues, self._served)
            job = self._queues[client].popleft()
            if not self._queues[client]:
                del self._queues[client]
            self._turn += 1
            self._served[client] = self._turn
            self._served.move_to_end(client)
            while len(self._served) > SERVED_MEMORY:
                oldest = next(iter(self._served))
                if oldest in self._queues:  # still waiting: keep its turn
                    break
                self._served.popitem(last=False)
            job.state = JobState.RUNNING
            job.started = job.last_progress = time.monotonic()
            self._running.append(job)
            return job

    def cancel_queued(self, job: Job) -> bool:
        """Remove a job that has not started; True if it was still queued."""
        with self._lock:
            if job.state is not JobState.QUEUED:
                return False
            own = self._queues.get(job.client)
            if own is not None and job in own:
                own.remove(job)
                if not own:
                    del self._queues[job.client]
            self._finish_locked(job, JobState.CANCELLED, None, 0)
            return True

    def finish(self, job: Job, state: JobState, frames: list[Any] | None, nbytes: int) -> None:
        with self._lock:
            self._finish_locked(job, state, frames, nbytes)

    def _finish_locked(self, job: Job, state: JobState, frames: list[Any] | None,
                       nbytes: int) -> None:
        job.state = state
        job.finished_at = time.monotonic()
        # the inputs are views of received frames or of the client's shared-memory ring:
        # a finished job kept for re-fetch must not hold them (or the ring) for minutes
        job.request = None
        job.final_frames = frames
        job.final_nbytes = nbytes
        if job in self._running:
            self._running.remove(job)
        self._finished[job.id] = job
        self._finished_bytes += nbytes
        self._evict_locked()

    def _evict_locked(self) -> None:
        now = time.monotonic()
        while self._finished:
            oldest = next(iter(self._finished.values()))
            too_old = now - (oldest.finished_at or now) > self.keep_seconds
            if not too_old and self._finished_bytes <= self.keep_bytes:
                break
            self._finished.popitem(last=False)
            self._finished_bytes -= oldest.final_nbytes
            self._jobs.pop(oldest.id, None)

    def evict_expired(self) -> None:
        with self._lock:
            self._evict_locked()

    def close(self) -> list[Job]:
        """Stop taking work; cancel everything queued or running. Returns those jobs."""
        with self._lock:
            self._closed = True
            pending = self._order_locked()
            self._queues.clear()
            for job in pending:
                job.cancel.set()
            for job in self._running:
                job.cancel.set()
                pending.append(job)
            self._lock.notify_all()
            return pending

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "queued": self._waiting_locked(),
                "max_queue": self.max_queue,
                "max_per_client": self.max_per_client,
                "clients_waiting": len(self._queues),
                "running": self._running[0].id if self._running else None,
                "running_owner": self._running[0].owner if self._running else None,
                "running_step": ([self._running[0].step, self._running[0].total]
                                 if self._running else None),
                "running_count": len(self._running),
                "kept_results": len(self._finished),
                "kept_bytes": self._finished_bytes,
            }
