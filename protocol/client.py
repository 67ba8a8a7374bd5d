"""EngineClient: the one client of the engine, used by the CLI and both editor plugins.

Blocking use (CLI, scripts)::

    with EngineClient(endpoint) as client:
        welcome = client.connect()
        result = client.edit(request, on_progress=print)

Non-blocking use (editors): call :meth:`submit`, then watch :meth:`fileno` with a
``QSocketNotifier`` (edge-triggered: call :meth:`poll` with ``timeout=0`` on every
notification, after every send, and from a slow timer) and handle the returned events.
:meth:`check_timeouts` turns silence into :class:`Timeout` / :class:`EngineUnavailable`.

Timeouts mean "no message from the engine for N seconds", never total job time: the
engine sends progress or a heartbeat at least every 2 s while a job runs.

With a local ``ipc://`` engine on Linux, :meth:`connect` also offers shared memory
(:mod:`protocol.shm`): large buffers then go through two mapped rings instead of the
socket. Everything else is unchanged, and any buffer that does not fit travels as a frame.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq
from zmq.utils.monitor import recv_monitor_message

from . import endpoints, shm
from .errors import (
    AuthFailed,
    EngineRejected,
    EngineUnavailable,
    ErrorCode,
    JobCancelled,
    ProtocolError,
    Timeout,
    VersionMismatch,
)
from .events import Accepted, Cancelled, EngineError, Event, Progress, Result, Welcome, parse_event
from .framing import DEFAULT_LIMITS, PROTOCOL_VERSION, Limits, Message, decode, encode, new_id
from .messages import EditRequest, check_request

CLIENT_VERSION = "0.1.0"
ProgressCallback = Callable[[Progress], None]


#: the slowest link a remote engine is expected over (8 Mbit/s): a job's timeout allows
#: its pixels this long in transit, since no progress can arrive while they are
SLOW_LINK_BYTES_PER_S = 1_000_000


@dataclass(frozen=True)
class CurveKeys:
    """CURVE keys for a remote engine: the server's public key and this client's pair."""

    server_public: bytes
    client_public: bytes
    client_secret: bytes

    @classmethod
    def from_files(cls, server_key_file: str | Path, client_key_file: str | Path) -> CurveKeys:
        """Load ZeroMQ certificate files (as written by ``wordbrush keys``)."""
        import zmq.auth

        server_public, _ = zmq.auth.load_certificate(str(server_key_file))
        client_public, client_secret = zmq.auth.load_certificate(str(client_key_file))
        if client_secret is None:
            raise AuthFailed(f"{client_key_file} holds no secret key; use the '.key_secret' file")
        return cls(server_public, client_public, client_secret)

    @classmethod
    def from_settings(cls, server_key_file: str | Path | None,
                      client_key_file: str | Path | None) -> CurveKeys | None:
        """The keys a client's settings name, or None where they name neither (a local or
        loopback engine). Raises ValueError where only one is named, OSError or AuthFailed
        for a file that cannot be used."""
        if not (server_key_file or client_key_file):
            return None
        if not (server_key_file and client_key_file):
            raise ValueError("give both the engine's public key (server.key) and this "
                             "machine's secret key (NAME.key_secret)")
        return cls.from_files(server_key_file, client_key_file)


class EngineClient:
    """A connection to one engine over a ZeroMQ DEALER socket. Not thread-safe."""

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        context: zmq.Context | None = None,
        curve: CurveKeys | None = None,
        connect_timeout: float = 5.0,
        progress_timeout: float = 30.0,
        reconnect_grace: float = 10.0,
        client_name: str = "wordbrush",
        shared_memory: bool = True,
    ) -> None:
        self.endpoint = endpoint or endpoints.default_endpoint()
        endpoints.check_endpoint_syntax(self.endpoint, connect=True)
        self._ctx = context or zmq.Context.instance()
        self._curve = curve
        self.connect_timeout = connect_timeout
        self.progress_timeout = progress_timeout
        self.reconnect_grace = reconnect_grace
        self.client_name = client_name
        self.welcome: Welcome | None = None
        self._sock: zmq.Socket | None = None
        self._monitor: zmq.Socket | None = None
        self._replies: dict[str, Message] = {}
        self._replies_wanted: set[str] = set()
        self._jobs: dict[str, float] = {}  # in-flight job id -> time of last message
        # in-flight job id -> seconds its layer and results may take on a slow link, during
        # which the engine's heartbeats wait behind them: added to the progress timeout
        self._transfer_s: dict[str, float] = {}
        self._events: list[Event] = []
        self._auth_failed = False
        self._handshake_failures = 0  # failed CURVE/NULL handshakes with no reason given
        self._security_mismatch = False  # one side speaks CURVE, the other not
        self._disconnected_at: float | None = None
        self.shared_memory = shared_memory
        self._link: shm.SharedLink | None = None
        self._send_shared = False  # cleared on reconnect: a new engine would not know the rings
        self._sent_shared: dict[str, Message] = {}  # submits sent through the ring, unanswered
        # a stable routing id: the engine knows this client (and its rings) across reconnects
        self._routing_id = b"wb" + secrets.token_bytes(14)

    # ------------------------------------------------------------------ socket life

    @property
    def limits(self) -> Limits:
        return self.welcome.limits if self.welcome else DEFAULT_LIMITS

    def _open(self) -> zmq.Socket:
        if self._sock is not None:
            return self._sock
        sock = self._ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.ROUTING_ID, self._routing_id)
        sock.setsockopt(zmq.LINGER, 1000)
        sock.setsockopt(zmq.RCVHWM, 64)
        sock.setsockopt(zmq.HEARTBEAT_IVL, 1000)
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 5000)
        sock.setsockopt(zmq.HANDSHAKE_IVL, 5000)
        sock.setsockopt(zmq.RECONNECT_IVL, 200)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
        if self._curve is not None:
            sock.curve_serverkey = self._curve.server_public
            sock.curve_publickey = self._curve.client_public
            sock.curve_secretkey = self._curve.client_secret
        self._monitor = sock.get_monitor_socket(
            zmq.EVENT_HANDSHAKE_FAILED_AUTH
            | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
            | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
            | zmq.EVENT_HANDSHAKE_SUCCEEDED
            | zmq.EVENT_DISCONNECTED
        )
        try:
            sock.connect(self.endpoint)
        except zmq.ZMQError as exc:  # what the syntax check cannot see
            self._monitor.close(linger=0)
            self._monitor = None
            sock.close(linger=0)
            raise EngineUnavailable(f"cannot connect to {self.endpoint}: {exc}") from None
        self._sock = sock
        return sock

    def close(self) -> None:
        if self._sock is not None and self._link is not None:
            # let the engine unmap our rings now rather than when it finds them idle
            with contextlib.suppress(zmq.ZMQError, EngineUnavailable):
                self._send(Message("bye"))
        if self._sock is not None:
            with contextlib.suppress(zmq.ZMQError):
                self._sock.disable_monitor()
            if self._monitor is not None:
                self._monitor.close(linger=0)
            self._sock.close()
        self._sock = None
        self._monitor = None
        self.welcome = None
        self._drop_link()

    def _drop_link(self) -> None:
        self._send_shared = False
        self._sent_shared.clear()
        if self._link is not None:
            self._link.close()  # views still in use keep their mapping alive
            self._link = None

    @property
    def uses_shared_memory(self) -> bool:
        """True while large buffers go to the engine through shared memory."""
        return self._send_shared

    def __enter__(self) -> EngineClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fileno(self) -> int:
        """The ZeroMQ FD to watch for readability (edge-triggered; see the module doc)."""
        return self._open().getsockopt(zmq.FD)

    # ------------------------------------------------------------------ sending

    def _send(self, message: Message) -> None:
        sock = self._open()
        frames = encode(message, self.limits)
        if self._send_shared and self._link is not None:
            frames = self._link.writer.place_frames(frames)
            if len(frames) < 2 + len(message.buffers):
                self._sent_shared[message.id] = message  # to resend should the engine not know
        try:
            sock.send_multipart(frames, copy=False, flags=zmq.NOBLOCK)
        except zmq.Again:
            if self._sent_shared.pop(message.id, None) is not None and self._link is not None:
                self._link.writer.unplace_last()
            raise EngineUnavailable(
                f"could not send to the engine at {self.endpoint}: it is not accepting messages"
            ) from None

    # ------------------------------------------------------------------ receiving

    def _drain_monitor(self) -> None:
        mon = self._monitor
        if mon is None:
            return
        while mon.poll(0):
            event = recv_monitor_message(mon)["event"]
            if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                self._auth_failed = True
            elif event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
                self._security_mismatch = True
            elif event == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL:
                self._handshake_failures += 1
            elif event == zmq.EVENT_DISCONNECTED:
                if self._disconnected_at is None:
                    self._disconnected_at = time.monotonic()
            elif event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self._handshake_failures = 0  # a failure before was a dropped connection
                self._security_mismatch = False
                if self._disconnected_at is not None:
                    # the engine may be a new one that never saw our rings: send frames
                    # (until the next connect); still read what the old one sends
                    self._send_shared = False
                if self._disconnected_at is not None and self._jobs:
                    # the engine came back (or the link did): ask after every job in flight;
                    # a submit that went through the ring is sent again as frames instead
                    for job in list(self._jobs):
                        sent = self._sent_shared.pop(job, None)
                        self._send(sent if sent is not None else Message("fetch", {"job": job}))
                self._disconnected_at = None
        if self._auth_failed:
            raise AuthFailed(
                f"the engine at {self.endpoint} refused this client's key "
                "(check the client key file and that its public key is on the engine's "
                "allow-list, and the server key)"
            )
        if self._security_mismatch:
            raise AuthFailed(
                f"the engine at {self.endpoint} and this client do not agree on encryption: "
                + ("this client has keys, the engine expects none" if self._curve else
                   "the engine expects CURVE keys and this client has none (give it the "
                   "engine's server.key and this machine's NAME.key_secret)"))
        if self._handshake_failures >= 2 and self._curve is not None \
                and self.welcome is None:
            # a CURVE client with a server key that is not the engine's sees its handshake
            # fail again and again, with no reason given (so does one whose port forward
            # has no engine behind it); once connected, a failure is a dropped connection
            raise AuthFailed(
                f"the encrypted handshake with {self.endpoint} keeps failing: the server "
                "key this client has is most likely not that engine's (were the engine's "
                "keys made again?), or nothing but a port forward answers there")

    def _receive_ready(self) -> None:
        """Read every message that is ready, without blocking, into the queues."""
        sock = self._open()
        self._drain_monitor()
        while sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            try:
                frames = sock.recv_multipart(copy=False, flags=zmq.NOBLOCK)
            except zmq.Again:
                break
            try:
                message = decode(frames, self.limits,
                                 self._link.reader if self._link is not None else None)
            except ProtocolError as exc:
                raise EngineRejected(f"the engine sent a message this client cannot read: {exc}",
                                     code=ErrorCode.BAD_MESSAGE) from None
            self._dispatch(message)

    def _dispatch(self, message: Message) -> None:
        event = parse_event(message)
        sent = self._sent_shared.pop(message.ref, None) if message.ref is not None else None
        if isinstance(event, EngineError) and event.code is ErrorCode.SHARED_MEMORY_UNKNOWN:
            # the engine does not hold our rings (it restarted, or dropped them): send the
            # same message, same id, as frames; if that was done already, this is moot
            self._send_shared = False
            if sent is not None:
                self._send(sent)
            return
        if event is None or (isinstance(event, EngineError) and event.job is None):
            if message.ref in self._replies_wanted:
                self._replies[message.ref] = message
            return
        job = getattr(event, "job", None)
        if job in self._jobs:
            if not (isinstance(event, Progress) and event.stalled):
                self._jobs[job] = time.monotonic()
            if isinstance(event, (Result, Cancelled, EngineError)):
                del self._jobs[job]
                self._transfer_s.pop(job, None)
            self._events.append(event)
        elif message.ref is not None and message.ref in self._replies_wanted:
            self._replies[message.ref] = message
        # events of jobs this client no longer follows are dropped

    def poll(self, timeout: float = 0.0) -> list[Event]:
        """Wait up to ``timeout`` seconds for engine messages; return the job events so far."""
        sock = self._open()
        if not self._events and timeout > 0:
            poller = zmq.Poller()
            poller.register(sock, zmq.POLLIN)
            if self._monitor is not None:
                poller.register(self._monitor, zmq.POLLIN)
            poller.poll(int(timeout * 1000))
        self._receive_ready()
        events, self._events = self._events, []
        return events

    def check_timeouts(self) -> None:
        """Raise if an in-flight job has heard nothing for too long (call from a timer)."""
        now = time.monotonic()
        gone = self._disconnected_at
        if gone is not None and self._jobs and now - gone > self.reconnect_grace:
            jobs, self._jobs = self._jobs, {}
            self._transfer_s.clear()
            self._sent_shared.clear()
            raise EngineUnavailable(
                f"lost the connection to the engine at {self.endpoint} during the job "
                f"({', '.join(jobs)}); nothing was changed"
            )
        for job, last in list(self._jobs.items()):
            allowed = self.progress_timeout + self._transfer_s.get(job, 0.0)
            if now - last > allowed:
                del self._jobs[job]
                self._transfer_s.pop(job, None)
                self._sent_shared.pop(job, None)
                raise Timeout(
                    f"no progress from the engine for {allowed:.0f} s "
                    f"(job {job}); it may have stopped"
                )

    def _request(self, message: Message, timeout: float) -> Message:
        """Send a request and wait for its direct reply (matched by ``ref``)."""
        self._replies_wanted.add(message.id)
        try:
            self._send(message)
            deadline = time.monotonic() + timeout
            while message.id not in self._replies:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise EngineUnavailable(
                        f"no engine answered at {self.endpoint} within {timeout:g} s "
                        "(is `wordbrush serve` running?)"
                    )
                self._events.extend(self.poll(min(remaining, 0.1)))
            reply = self._replies.pop(message.id)
        finally:
            self._replies_wanted.discard(message.id)
        if reply.type == "error":
            code = ErrorCode.parse(reply.body.get("code"))
            text = str(reply.body.get("message", "the engine refused the request"))
            if code is ErrorCode.UNSUPPORTED_VERSION:
                raise VersionMismatch(text)
            raise EngineRejected(text, code=code)
        return reply

    # ------------------------------------------------------------------ requests

    def connect(self, timeout: float | None = None) -> Welcome:
        """Say hello; check the protocol version; remember what the engine offers.

        To a local ipc engine this also offers shared memory; the engine maps it or says
        why not, and either way the files' names are removed before this returns.
        """
        body: dict[str, Any] = {"client": self.client_name, "version": CLIENT_VERSION,
                                "protocol": PROTOCOL_VERSION}
        self._handshake_failures = 0  # counted afresh for this hello
        # stop writing to the old rings, but keep reading them until the welcome: what the
        # engine placed there before it read this hello still arrives first
        self._send_shared = False
        link = None
        if self.shared_memory and self.endpoint.startswith("ipc://") and shm.supported():
            try:
                link, body["shm"] = shm.SharedLink.offer()
            except (shm.SharedMemoryUnavailable, OSError, ValueError):
                link = None  # frames, as with any engine
        try:
            reply = self._request(Message("hello", body),
                                  self.connect_timeout if timeout is None else timeout)
        except BaseException:
            if link is not None:
                link.unlink()
                link.close()
            raise
        if self._link is not None:  # the engine has dropped it on this hello
            self._link.close()
            self._link = None
        if link is not None:
            link.unlink()
            if reply.body.get("shm") is True:
                self._link, self._send_shared = link, True
            else:
                link.close()
        if reply.type != "welcome":
            raise EngineRejected(f"expected 'welcome', the engine sent {reply.type!r}")
        welcome = Welcome.from_message(reply)
        if welcome.protocol != PROTOCOL_VERSION:
            raise VersionMismatch(
                f"the engine speaks protocol {welcome.protocol}, this client {PROTOCOL_VERSION}; "
                "update the plugin or the engine so that both match"
            )
        self.welcome = welcome
        return welcome

    def ping(self, timeout: float = 2.0) -> float:
        """Round-trip time in seconds."""
        start = time.perf_counter()
        self._request(Message("ping"), timeout)
        return time.perf_counter() - start

    def status(self, timeout: float = 2.0) -> dict[str, Any]:
        return dict(self._request(Message("status"), timeout).body)

    def submit(self, request: EditRequest, job_id: str | None = None) -> str:
        """Check the request against the engine's limits, send it, return the job id.

        Re-submitting with the same ``job_id`` (after a reconnect, say) attaches to the
        existing job instead of starting another.
        """
        if self.welcome is None:
            self.connect()
        check_request(request, self.limits)
        message = request.to_message(job_id or new_id())
        self._jobs[message.id] = time.monotonic()
        if not endpoints.is_local(self.endpoint):  # the layer up, a patch per variation down
            payload = sum(b.expected_nbytes for b in message.buffers) * (1 + request.variations)
            self._transfer_s[message.id] = payload / SLOW_LINK_BYTES_PER_S
        self._send(message)
        return message.id

    def cancel(self, job_id: str) -> None:
        """Ask the engine to cancel; a ``Cancelled`` (or the result, if too late) follows."""
        if job_id in self._jobs:
            self._jobs[job_id] = time.monotonic()
        self._send(Message("cancel", {"job": job_id}))

    def fetch(self, job_id: str) -> None:
        """Ask for a job's result again (it is kept a while after it finishes)."""
        self._jobs[job_id] = time.monotonic()
        self._send(Message("fetch", {"job": job_id}))

    def wait(
        self,
        job_id: str,
        on_progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
        on_accepted: Callable[[Accepted], None] | None = None,
        on_idle: Callable[[], None] | None = None,
    ) -> Result:
        """Block until the job ends; return its result or raise why it did not.

        Other jobs' events that arrive meanwhile stay for their own ``wait`` or ``poll``
        (a batch: one client, many jobs, waited for one by one). ``on_idle`` is called
        about ten times a second: an editor waiting on its UI thread keeps its window
        alive there (and may set ``cancel``)."""
        cancel_sent = False
        self._jobs.setdefault(job_id, time.monotonic())
        # kept aside, not in the buffer poll() returns at once: a wait with other jobs'
        # events buffered would spin without sleeping and take a core from the engine
        others: list[Event] = []
        try:
            while True:
                if cancel is not None and cancel.is_set() and not cancel_sent:
                    self.cancel(job_id)
                    cancel_sent = True
                events = self.poll(0.1)
                if on_idle is not None:
                    on_idle()
                for i, event in enumerate(events):
                    if getattr(event, "job", None) != job_id:
                        others.append(event)
                        continue
                    if isinstance(event, Progress) and on_progress is not None:
                        on_progress(event)
                    elif isinstance(event, Accepted) and on_accepted is not None:
                        on_accepted(event)
                    elif isinstance(event, (Result, Cancelled, EngineError)):
                        others.extend(events[i + 1:])  # not this job's to drop
                        if isinstance(event, Result):
                            return event
                        if isinstance(event, Cancelled):
                            raise JobCancelled(f"job {job_id} was cancelled; nothing was "
                                               "changed")
                        raise EngineRejected(event.message, code=event.code)
                self.check_timeouts()
        finally:
            self._events[:0] = others  # for the other jobs' own wait or poll, in order
            # ended (or given up on): no longer in flight, whatever the buffered events said
            self._jobs.pop(job_id, None)

    def edit(
        self,
        request: EditRequest,
        on_progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
        on_idle: Callable[[], None] | None = None,
    ) -> Result:
        """Submit and wait: the whole edit in one call."""
        return self.wait(self.submit(request), on_progress=on_progress, cancel=cancel,
                         on_idle=on_idle)
