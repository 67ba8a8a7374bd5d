"""The persistent engine server: a ROUTER socket, an I/O thread and worker threads.

The I/O thread owns the ROUTER socket. It decodes and validates every request, answers
``hello``/``ping``/``status``/``cancel``/``fetch`` at once (also while a job runs: cancel
never queues behind work), queues ``submit`` jobs, relays what the worker produces, and
sends an app-level heartbeat every second while a job runs, since ZMTP heartbeats cannot
see a worker that is stuck. A worker runs one job at a time through the runner and
hands its messages to the I/O thread over an inproc PUSH/PULL pair (ZeroMQ sockets are
not thread-safe, so only the I/O thread touches the ROUTER). An in-process engine has
one worker; one in front of a cluster (:mod:`engine.cluster`) has as many as the
cluster's replicas can take at once, each waiting on its job's stream.

Socket options are set deliberately: MAXMSGSIZE drops any frame over the advertised
limit before allocating it; a frame-count cap is checked while receiving; the receive
HWM is low; ROUTER_MANDATORY makes replies to vanished peers fail loudly (and we drop
them) instead of vanishing; sends never block, so a client that never reads cannot
grow the engine's memory; ZMTP heartbeats find dead peers.

On an ``ipc://`` endpoint a client may offer shared memory in ``hello``
(:mod:`protocol.shm`); the I/O thread then reads that client's large buffers from its
ring and writes large replies into the other one. Clients keep their routing id across
reconnects (ROUTER_HANDOVER), so the rings stay theirs. The engine lets go of a client's
rings on its ``bye``, on its next ``hello``, when it is gone, or after ``keep_seconds`` of
silence; at most ``MAX_SHARED_LINKS`` clients hold rings at once. A client whose rings
were let go gets ``shm_unknown`` for a buffer in them and sends it again as a frame.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import zmq

from protocol import endpoints, shm
from protocol.errors import ErrorCode, InvalidRequest, ProtocolError, WordbrushError
from protocol.framing import (
    DEFAULT_LIMITS,
    PROTOCOL_VERSION,
    Buffer,
    Limits,
    Message,
    decode,
    encode,
)
from protocol.messages import (
    LAYER_FORMATS,
    EditRequest,
    error_message,
    job_id_of,
    parse_submit,
)

from . import __version__
from .jobs import Job, JobBook, JobState, QueueFull
from .keys import AllowList
from .methods.base import Cancelled

log = logging.getLogger("wordbrush.engine")


def _user_id(frame: zmq.Frame) -> str:
    """The ZAP User-Id of the connection ``frame`` came on: the client's public key on an
    encrypted engine, "" where no authentication ran (ipc, loopback)."""
    try:
        return frame.get("User-Id") or ""
    except zmq.ZMQError:
        return ""

HEARTBEAT_SECONDS = 1.0
#: a running job whose method has reported no step for this long gets heartbeats flagged
#: ``stalled``, which do not reset its client's silence timeout: a hung method (a GPU hang,
#: a deadlock) must not keep clients waiting for ever. Longer than any step of a full-size
#: pack on a CPU.
STALL_SECONDS = 300.0
MAX_SHARED_LINKS = 16

#: progress(step, total, message, preview)
JobProgress = Callable[[int, int, str, Buffer | None], None]


@dataclass
class JobPlan:
    """A validated submit: what to run, decided before the job is queued."""

    method: str
    pack: str | None
    params: dict[str, Any]
    seed: int


@dataclass
class JobOutcome:
    offset: tuple[int, int]
    patches: list[Buffer]
    info: dict[str, Any]


class Runner(Protocol):
    """What the server needs from the edit machinery (see engine.runner.EditRunner)."""

    def plan(self, request: EditRequest) -> JobPlan: ...

    def run(self, job: Job, progress: JobProgress) -> JobOutcome: ...

    def describe(self) -> dict[str, Any]: ...

    def status(self) -> dict[str, Any]: ...


class RefuseInsecureBind(WordbrushError):
    pass


@dataclass
class ServerConfig:
    endpoint: str
    limits: Limits = DEFAULT_LIMITS
    max_queue: int = 32  # jobs waiting, all clients together
    max_per_client: int = 8  # jobs one client may have waiting (its CURVE key, or connection)
    keep_seconds: float = 600.0
    keep_bytes: int = 512 * 1024 * 1024
    curve_secret_file: Path | None = None  # server key pair (.key_secret) for remote use
    curve_allow_dir: Path | None = None  # folder of allowed client public keys
    sndhwm: int = 16
    #: jobs run at once: 1 in this process; on a cluster, as many as its replicas can take
    workers: int = 1
    #: cancel the running job once its client has been unreachable this long (an editor
    #: killed mid-edit: GIMP's cancel does that); 0 keeps such jobs running to the end;
    #: None: 10 s on a local endpoint, where a client does not drop out and come back,
    #: 60 s on a network one, where it may
    orphan_seconds: float | None = None

    def orphan_grace(self) -> float:
        if self.orphan_seconds is not None:
            return self.orphan_seconds
        return 10.0 if endpoints.is_local(self.endpoint) else 60.0


class EngineServer:
    def __init__(self, runner: Runner, config: ServerConfig,
                 context: zmq.Context | None = None) -> None:
        endpoints.check_endpoint_syntax(config.endpoint)
        curve = config.curve_secret_file is not None
        if not endpoints.is_local(config.endpoint) and not curve:
            raise RefuseInsecureBind(
                f"refusing to listen on {config.endpoint} without encryption: a non-loopback "
                "TCP endpoint needs CURVE keys (run `wordbrush keys init` once: `wordbrush "
                "serve` then finds them; or give --server-key and --allow-dir), or use "
                "tcp://127.0.0.1:PORT or ipc://"
            )
        self.runner = runner
        self.config = config
        self.limits = config.limits
        self.jobs = JobBook(config.max_queue, config.keep_seconds, config.keep_bytes,
                            config.max_per_client)
        self._ctx = context or zmq.Context.instance()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._outbox_addr = f"inproc://wordbrush-outbox-{id(self)}"
        self._workers: list[threading.Thread] = []
        self._io: threading.Thread | None = None
        self._auth: Any = None
        self.bound_endpoint: str | None = None
        self._startup_error: BaseException | None = None
        self._io_error: BaseException | None = None  # the I/O loop died: serving stopped
        self.started_at = time.time()
        # peer routing id -> its shared-memory rings (I/O thread only)
        self._links: OrderedDict[bytes, shm.SharedLink] = OrderedDict()
        self._link_seen: dict[bytes, float] = {}  # peer -> when it last sent anything
        self._gone_since: dict[bytes, float] = {}  # peer -> first failed send since it spoke
        #: (peer, reason) -> messages dropped since the first, which alone is logged; the
        #: count is logged when the peer speaks again or is forgotten
        self._drops: dict[tuple[bytes, str], int] = {}
        self._shared_memory = config.endpoint.startswith("ipc://") and shm.supported()

    # ------------------------------------------------------------------ lifecycle

    def _bind(self) -> zmq.Socket:
        sock = self._ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 500)
        sock.setsockopt(zmq.MAXMSGSIZE, self.limits.max_frame_bytes + 64 * 1024)
        sock.setsockopt(zmq.RCVHWM, 8)
        sock.setsockopt(zmq.SNDHWM, self.config.sndhwm)
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        sock.setsockopt(zmq.ROUTER_HANDOVER, 1)  # a reconnecting client keeps its id
        sock.setsockopt(zmq.HANDSHAKE_IVL, 5000)
        sock.setsockopt(zmq.HEARTBEAT_IVL, 2000)
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 10000)
        sock.setsockopt(zmq.HEARTBEAT_TTL, 10000)
        if self.config.curve_secret_file is not None:
            self._setup_curve(sock)
        endpoint = self.config.endpoint
        endpoints.prepare_endpoint(endpoint)
        if endpoint.startswith("ipc://"):
            self._clear_stale_ipc(Path(endpoint[len("ipc://"):]))
        try:
            sock.bind(endpoint)
        except zmq.ZMQError as exc:
            sock.close(linger=0)
            if exc.errno in (zmq.EADDRINUSE, errno.EADDRINUSE):
                raise WordbrushError(f"another program is already listening at {endpoint} "
                                     "(another engine?); stop it or choose another "
                                     "--endpoint") from None
            raise WordbrushError(f"cannot serve at {endpoint}: {exc.strerror}") from None
        self.bound_endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        if endpoint.startswith("ipc://"):
            os.chmod(endpoint[len("ipc://"):], 0o600)
        return sock

    def _clear_stale_ipc(self, path: Path) -> None:
        """Remove a socket file left by a dead engine; refuse if a live one answers."""
        if not path.exists():
            return
        probe = self._ctx.socket(zmq.DEALER)
        probe.setsockopt(zmq.LINGER, 0)
        try:
            probe.connect(f"ipc://{path}")
            probe.send_multipart(encode(Message("ping")), flags=zmq.NOBLOCK)
            if probe.poll(300):
                raise WordbrushError(f"another engine is already serving at ipc://{path}")
        except zmq.Again:
            pass
        finally:
            probe.close()
        path.unlink(missing_ok=True)

    def _setup_curve(self, sock: zmq.Socket) -> None:
        import zmq.auth
        from zmq.auth.thread import ThreadAuthenticator

        public, secret = zmq.auth.load_certificate(str(self.config.curve_secret_file))
        if secret is None:
            raise WordbrushError(f"{self.config.curve_secret_file} holds no secret key")
        allow = self.config.curve_allow_dir
        if allow is None or not Path(allow).is_dir():
            raise WordbrushError("CURVE needs --allow-dir, a folder of allowed client keys")
        self._auth = ThreadAuthenticator(self._ctx)
        self._auth.start()
        # read at every handshake: add-client and remove-client need no restart
        self._auth.configure_curve_callback(domain="*", credentials_provider=AllowList(allow))
        sock.curve_secretkey = secret
        sock.curve_publickey = public
        sock.curve_server = True

    def start(self) -> str:
        """Start the I/O and worker threads; return the bound endpoint once listening."""
        self._io = threading.Thread(target=self._io_main, name="wordbrush-io", daemon=True)
        self._io.start()
        self._ready.wait(10)
        if self._startup_error is not None:
            raise self._startup_error
        return self.bound_endpoint or self.config.endpoint

    def serve_forever(self, install_signals: bool = True) -> None:
        """Run until SIGINT/SIGTERM (or :meth:`stop`); shut down cleanly."""
        if install_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: self._stop.set())
        self.start()
        log.info("engine listening endpoint=%s version=%s", self.bound_endpoint, __version__)
        while not self._stop.is_set():
            self._stop.wait(0.5)
        self.stop()
        if self._io_error is not None:
            raise WordbrushError(f"the engine stopped serving: {type(self._io_error).__name__}: "
                                 f"{self._io_error} (see the log)")

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._io is not None and self._io is not threading.current_thread():
            self._io.join(timeout)
        if self._auth is not None:
            self._auth.stop()
            self._auth = None

    # ------------------------------------------------------------------ worker

    def _worker_main(self) -> None:
        out = self._ctx.socket(zmq.PUSH)
        out.connect(self._outbox_addr)
        try:
            while not self._stop.is_set():
                job = self.jobs.take(timeout=0.5)
                if job is not None:
                    self._run_job(job, out)
        finally:
            out.close(linger=1000)

    def _post(self, out: zmq.Socket, job: Job, message: Message) -> None:
        out.send_multipart([job.peer, *encode(message, self.limits)], copy=False)

    def _run_job(self, job: Job, out: zmq.Socket) -> None:
        log.info("job.start job=%s method=%s pack=%s", job.id, job.method, job.pack)

        def progress(step: int, total: int, text: str, preview: Buffer | None) -> None:
            job.step, job.total = step, total
            job.last_sent = job.last_progress = time.monotonic()
            job.stalled = False
            body = {"job": job.id, "step": step, "total": total, "message": text}
            self._post(out, job, Message("progress", body, [preview] if preview else [],
                                         ref=job.id))

        started = time.perf_counter()
        try:
            if job.cancel.is_set():
                raise Cancelled()
            outcome = self.runner.run(job, progress)
            if job.cancel.is_set():
                raise Cancelled()
            info = dict(outcome.info)
            info["elapsed_ms"] = round((time.perf_counter() - started) * 1000, 1)
            body = {"job": job.id, "offset": list(outcome.offset), "info": info,
                    "variations": len(outcome.patches)}
            # a result the wire cannot carry fails the job here, not the worker thread
            frames = encode(Message("result", body, outcome.patches, ref=job.id), self.limits)
        except Cancelled:
            message = Message("cancelled", {"job": job.id}, ref=job.id)
            frames = encode(message, self.limits)
            self.jobs.finish(job, JobState.CANCELLED, frames, 0)
            log.info("job.cancelled job=%s", job.id)
        except WordbrushError as exc:
            message = error_message(exc.code, exc.message, ref=job.id, job=job.id)
            frames = encode(message, self.limits)
            self.jobs.finish(job, JobState.FAILED, frames, 0)
            log.warning("job.failed job=%s code=%s error=%s", job.id, exc.code.value, exc)
        except Exception as exc:  # a bug or a model failure: report it, keep serving
            log.exception("job.crashed job=%s", job.id)
            message = error_message(ErrorCode.METHOD_FAILED,
                                    f"the edit failed: {type(exc).__name__}: {exc}",
                                    ref=job.id, job=job.id)
            frames = encode(message, self.limits)
            self.jobs.finish(job, JobState.FAILED, frames, 0)
        else:
            nbytes = sum(memoryview(p.data).nbytes for p in outcome.patches)
            self.jobs.finish(job, JobState.DONE, frames, nbytes)
            log.info("job.done job=%s ms=%s", job.id, info["elapsed_ms"])
        out.send_multipart([job.peer, *frames], copy=False)

    # ------------------------------------------------------------------ I/O thread

    def _io_main(self) -> None:
        try:
            router = self._bind()
            inbox = self._ctx.socket(zmq.PULL)
            inbox.bind(self._outbox_addr)
        except BaseException as exc:
            self._startup_error = exc
            self._ready.set()
            return
        for k in range(max(1, self.config.workers)):
            worker = threading.Thread(target=self._worker_main, name=f"wordbrush-worker-{k}",
                                      daemon=True)
            worker.start()
            self._workers.append(worker)
        self._ready.set()
        poller = zmq.Poller()
        poller.register(router, zmq.POLLIN)
        poller.register(inbox, zmq.POLLIN)
        last_housekeeping = time.monotonic()
        try:
            while not self._stop.is_set():
                ready = dict(poller.poll(250))
                if router in ready:
                    self._drain_router(router)
                if inbox in ready:
                    while True:
                        try:
                            frames = inbox.recv_multipart(copy=False, flags=zmq.NOBLOCK)
                        except zmq.Again:
                            break
                        self._send_raw(router, frames[0].bytes, frames[1:])
                self._heartbeat(router)
                if time.monotonic() - last_housekeeping > 5:
                    self.jobs.evict_expired()
                    self._expire_links()
                    self._cancel_orphans()
                    last_housekeeping = time.monotonic()
        except Exception as exc:  # a bug: stop the process (a supervisor restarts it)
            log.exception("io.crashed")
            self._io_error = exc
        finally:
            self._stop.set()  # nothing serves any more: serve_forever must not wait on
            self._shutdown(router, inbox)

    def _shutdown(self, router: zmq.Socket, inbox: zmq.Socket) -> None:
        for job in self.jobs.close():
            if job.state is not JobState.RUNNING:
                self._send(router, job.peer, error_message(
                    ErrorCode.SHUTTING_DOWN, "the engine is shutting down", ref=job.id,
                    job=job.id))
        for worker in self._workers:
            worker.join(10)
        # deliver what the worker produced while stopping (e.g. a final `cancelled`)
        while True:
            try:
                frames = inbox.recv_multipart(copy=False, flags=zmq.NOBLOCK)
            except zmq.Again:
                break
            self._send_raw(router, frames[0].bytes, frames[1:])
        inbox.close(linger=0)
        router.close()
        for peer in list(self._links):
            self._drop_link(peer)
        if self.config.endpoint.startswith("ipc://"):
            Path(self.config.endpoint[len("ipc://"):]).unlink(missing_ok=True)
        log.info("engine stopped")

    def _send_raw(self, router: zmq.Socket, peer: bytes, frames: list[Any]) -> bool:
        link = self._links.get(peer)
        if link is not None:
            frames = link.writer.place_frames(frames)
        try:
            router.send_multipart([peer, *frames], copy=False, flags=zmq.NOBLOCK)
            self._gone_since.pop(peer, None)
            self._report_drops(peer)
            return True
        except zmq.Again:
            self._dropped(peer, "slow-client", logging.WARNING)
            if link is not None:
                link.writer.unplace_last()  # never sent: the client will not free it
        except zmq.ZMQError as exc:
            if exc.errno != zmq.EHOSTUNREACH:
                raise
            self._dropped(peer, "gone", logging.INFO)
            self._gone_since.setdefault(peer, time.monotonic())
            self._drop_link(peer)
        return False

    def _dropped(self, peer: bytes, reason: str, level: int) -> None:
        """One message to ``peer`` could not be sent: the first is logged, the rest
        counted (a dead client's heartbeats would fill the log)."""
        key = (peer, reason)
        if key not in self._drops:
            log.log(level, "send.dropped peer=%s reason=%s (more are counted)", peer.hex(),
                    reason)
            self._drops[key] = 0
        self._drops[key] += 1

    def _report_drops(self, peer: bytes) -> None:
        """The count of what could not be sent to ``peer``, once it answers or is gone."""
        for reason in ("gone", "slow-client"):
            count = self._drops.pop((peer, reason), None)
            if count:
                log.info("send.dropped peer=%s reason=%s count=%d", peer.hex(), reason, count)

    def _send(self, router: zmq.Socket, peer: bytes, message: Message) -> bool:
        return self._send_raw(router, peer, encode(message, self.limits))

    def _heartbeat(self, router: zmq.Socket) -> None:
        """A heartbeat a second to every client whose job is running or waiting, so a
        client's silence timeout means a dead engine, not a busy one; a waiting job's
        says how many are ahead of it."""
        now = time.monotonic()
        running = self.jobs.running_jobs()
        beats: list[tuple[Job, str]] = []
        for job in running:
            silent = now - (job.last_progress or now)
            text = "working"
            if silent > STALL_SECONDS:
                if not job.stalled:
                    job.stalled = True
                    log.warning("job.stalled job=%s silent_s=%.0f", job.id, silent)
                text = f"no step for {silent:.0f} s"
            beats.append((job, text))
        ahead_start = 1 if running else 0
        beats += [(job, f"queued, {ahead} ahead")
                  for ahead, job in enumerate(self.jobs.queued(), ahead_start)]
        for job, text in beats:
            if now - job.last_sent < HEARTBEAT_SECONDS:
                continue
            job.last_sent = now
            body = {"job": job.id, "step": job.step, "total": job.total,
                    "message": text, "heartbeat": True}
            if job.state is JobState.RUNNING and job.stalled:
                # still sent, so a client that is gone is noticed (and its job stopped);
                # flagged, so a client that is there times out
                body["stalled"] = True
            self._send(router, job.peer, Message("progress", body, ref=job.id))

    def _drain_router(self, router: zmq.Socket) -> None:
        """Receive every ready message, frame by frame, with the frame-count cap."""
        cap = self.limits.max_frames + 1  # + the routing id
        for _ in range(64):  # bounded burst, so outgoing traffic is never starved
            try:
                first = router.recv(copy=False, flags=zmq.NOBLOCK)
            except zmq.Again:
                return
            frames = [first]
            overflow = False
            while router.getsockopt(zmq.RCVMORE):
                frame = router.recv(copy=False)
                if len(frames) < cap:
                    frames.append(frame)
                else:
                    overflow = True  # keep reading to discard the rest of the message
            peer = frames[0].bytes
            owner = _user_id(frames[-1])
            if overflow:
                self._send(router, peer, error_message(
                    ErrorCode.TOO_LARGE,
                    f"a message may have at most {self.limits.max_frames} frames", ref=None))
                continue
            self._handle(router, peer, frames[1:], owner)

    def _handle(self, router: zmq.Socket, peer: bytes, frames: list[Any], owner: str = ""
                ) -> None:
        """One request; ``owner`` is the sender's CURVE User-Id ("" without encryption)."""
        self._gone_since.pop(peer, None)
        self._report_drops(peer)
        link = self._links.get(peer)
        if link is not None:
            self._links.move_to_end(peer)
            self._link_seen[peer] = time.monotonic()
        try:
            message = decode(frames, self.limits, link.reader if link is not None else None)
        except ProtocolError as exc:
            log.info("request.bad peer=%s error=%s", peer.hex(), exc)
            # name the request (and a submit's job) when its header was readable
            job = exc.ref if exc.message_type == "submit" else None
            self._send(router, peer, error_message(exc.code, str(exc), ref=exc.ref, job=job))
            return
        try:
            handler = self._handlers.get(message.type)
            if handler is None:
                raise InvalidRequest(f"unknown message type {message.type!r}",
                                     code=ErrorCode.UNKNOWN_TYPE)
            handler(self, router, peer, message, owner)
        except WordbrushError as exc:
            # job errors name their job, so a client can tell which of its jobs failed
            job = message.id if message.type == "submit" else message.body.get("job")
            if not isinstance(job, str) or len(job) > 64:
                job = None
            self._send(router, peer, error_message(exc.code, exc.message, ref=message.id,
                                                   job=job))
        except Exception as exc:  # never let one request take the engine down
            log.exception("request.crashed type=%s", message.type)
            self._send(router, peer, error_message(
                ErrorCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}",
                ref=message.id))

    # ------------------------------------------------------------------ handlers

    def _on_hello(self, router: zmq.Socket, peer: bytes, message: Message,
                  owner: str = "") -> None:
        client_protocol = message.body.get("protocol", PROTOCOL_VERSION)
        if client_protocol != PROTOCOL_VERSION:
            raise WordbrushError(
                f"this engine speaks protocol {PROTOCOL_VERSION}, the client {client_protocol!r}",
                code=ErrorCode.UNSUPPORTED_VERSION)
        body = {"protocol": PROTOCOL_VERSION, "engine": __version__,
                "limits": self.limits.to_dict(), "layer_formats": list(LAYER_FORMATS),
                **self.runner.describe()}
        self._drop_link(peer)  # a hello starts afresh: the client has let go of old rings
        if "shm" in message.body:
            body.update(self._accept_shared_memory(peer, message.body["shm"]))
        self._send(router, peer, Message("welcome", body, ref=message.id))

    def _on_bye(self, router: zmq.Socket, peer: bytes, message: Message,
                owner: str = "") -> None:
        self._drop_link(peer)

    def _drop_link(self, peer: bytes) -> None:
        link = self._links.pop(peer, None)
        self._link_seen.pop(peer, None)
        if link is not None:
            link.close()  # views held by queued jobs keep their mapping until they finish
            log.info("shm.released peer=%s", peer.hex())

    def _cancel_orphans(self) -> None:
        """Stop the running job when its client has been unreachable for ``orphan_seconds``:
        its progress and result can go nowhere, and it holds the worker. A client that
        comes back sooner (same routing id after a reconnect, or any request such as a
        ``fetch``) finds its job going on; a cancelled one is kept for re-fetch as usual."""
        now = time.monotonic()
        for peer, since in list(self._gone_since.items()):
            if now - since > self.config.keep_seconds:
                del self._gone_since[peer]  # bounded: a long-gone client is forgotten
                self._report_drops(peer)
        grace = self.config.orphan_grace()
        if grace <= 0:
            return
        for job in self.jobs.running_jobs():
            if job.cancel.is_set():
                continue
            since = self._gone_since.get(job.peer)
            if since is not None and now - since >= grace:
                job.cancel.set()
                log.info("job.orphaned job=%s peer=%s unreachable_s=%.0f", job.id,
                         job.peer.hex(), now - since)

    def _expire_links(self) -> None:
        """Let go of the rings of clients silent for longer than results are kept."""
        cutoff = time.monotonic() - self.config.keep_seconds
        for peer in [p for p, seen in self._link_seen.items() if seen < cutoff]:
            self._drop_link(peer)

    def _accept_shared_memory(self, peer: bytes, offer: Any) -> dict[str, Any]:
        """Map a client's rings if this endpoint allows it; the welcome fields that say so."""
        if not self._shared_memory:
            return {"shm": False, "shm_note": "shared memory is only used over ipc on Linux"}
        try:
            link = shm.SharedLink.accept(offer)
        except (shm.SharedMemoryUnavailable, OSError, ValueError) as exc:  # hello still works
            log.info("shm.refused peer=%s reason=%s", peer.hex(), exc)
            return {"shm": False, "shm_note": str(exc)}
        self._links[peer] = link
        self._link_seen[peer] = time.monotonic()
        while len(self._links) > MAX_SHARED_LINKS:
            self._drop_link(next(iter(self._links)))
        log.info("shm.accepted peer=%s", peer.hex())
        return {"shm": True}

    def _on_ping(self, router: zmq.Socket, peer: bytes, message: Message,
                 owner: str = "") -> None:
        self._send(router, peer, Message("pong", {"time": time.time()}, ref=message.id))

    def _on_status(self, router: zmq.Socket, peer: bytes, message: Message,
                   owner: str = "") -> None:
        jobs = self.jobs.snapshot()
        if jobs.pop("running_owner") != owner:  # another key's job: counted, not named
            jobs["running"] = "another client's" if jobs["running"] else None
        body = {"jobs": jobs, "uptime_s": round(time.time() - self.started_at, 1),
                "pid": os.getpid(), "shared_memory_clients": len(self._links),
                **self.runner.status()}
        self._send(router, peer, Message("status", body, ref=message.id))

    def _on_submit(self, router: zmq.Socket, peer: bytes, message: Message,
                   owner: str = "") -> None:
        existing = self.jobs.get(message.id)
        if existing is not None:  # idempotent: the same id is the same job
            if existing.owner != owner:  # another key's: refused, not a new job
                log.warning("job.foreign job=%s", message.id)
                raise InvalidRequest(f"job id {message.id} is in use; send a new id")
            self._reattach(router, peer, existing, message.id)
            return
        request = parse_submit(message, self.limits)
        plan = self.runner.plan(request)
        # the buffers are zero-copy views that keep their received frames alive
        job = Job(id=message.id, peer=peer, request=request, method=plan.method,
                  pack=plan.pack, params=plan.params, seed=plan.seed, owner=owner,
                  client=owner or peer.hex())
        try:
            position = self.jobs.add(job)
        except QueueFull as exc:
            raise WordbrushError(str(exc), code=ErrorCode.QUEUE_FULL) from None
        log.info("job.accepted job=%s method=%s position=%s", job.id, job.method, position)
        self._send(router, peer, Message("accepted", {"job": job.id, "position": position},
                                         ref=message.id))

    def _own_job(self, job_id: str, owner: str) -> Job:
        """The job ``job_id`` if ``owner`` submitted it. Another key's job is answered as
        no job at all: on a shared engine one artist may not take, or cancel, another's."""
        job = self.jobs.get(job_id)
        if job is not None and job.owner != owner:
            log.warning("job.foreign job=%s", job_id)
            job = None
        if job is None:
            raise WordbrushError(
                f"this engine has no job {job_id} (it finished too long ago, or the engine "
                "restarted)", code=ErrorCode.UNKNOWN_JOB)
        return job

    def _reattach(self, router: zmq.Socket, peer: bytes, job: Job, ref: str) -> None:
        job.peer = peer
        if job.state.finished and job.final_frames is not None:
            self._send_raw(router, peer, job.final_frames)
            return
        position = self.jobs.position(job)
        self._send(router, peer, Message("accepted", {"job": job.id, "position": position},
                                         ref=ref))

    def _on_fetch(self, router: zmq.Socket, peer: bytes, message: Message,
                  owner: str = "") -> None:
        self._reattach(router, peer, self._own_job(job_id_of(message), owner), message.id)

    def _on_cancel(self, router: zmq.Socket, peer: bytes, message: Message,
                   owner: str = "") -> None:
        job = self._own_job(job_id_of(message), owner)
        job.peer = peer
        if job.state.finished:
            if job.final_frames is not None:
                self._send_raw(router, peer, job.final_frames)
            return
        job.cancel.set()
        if self.jobs.cancel_queued(job):
            frames = encode(Message("cancelled", {"job": job.id}, ref=message.id), self.limits)
            job.final_frames = frames
            self._send_raw(router, peer, frames)
        log.info("job.cancel job=%s", job.id)
        # a running job stops at its next step and the worker sends `cancelled`

    _handlers: ClassVar[dict[str, Callable[..., None]]] = {
        "hello": _on_hello,
        "ping": _on_ping,
        "status": _on_status,
        "submit": _on_submit,
        "fetch": _on_fetch,
        "cancel": _on_cancel,
        "bye": _on_bye,
    }

