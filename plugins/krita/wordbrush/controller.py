"""What the docker does, without Qt: connect, run, cancel, and turn engine events into
status lines, progress, previews and new layers.

The docker owns one :class:`Controller` and wires it to Qt: a ``QSocketNotifier`` on
:meth:`Controller.fileno` calls :meth:`Controller.pump` (edge-triggered: pump drains every
pending event, and runs after every send), and a slow ``QTimer`` calls :meth:`Controller.tick`
(silence -> timeout, engine start-up retries). Everything here is testable with fakes.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Protocol

from protocol import endpoints
from protocol.client import CurveKeys, EngineClient
from protocol.errors import (
    AuthFailed,
    EngineUnavailable,
    ProtocolError,
    Timeout,
    VersionMismatch,
    WordbrushError,
)
from protocol.events import Cancelled, EngineError, Progress, Result, Welcome, strength_note
from protocol.framing import Buffer
from protocol.launch import (
    ENGINE_START_S,
    NOTHING_TO_START,
    command_for,
    engine_log,
    launch_detached,
)
from protocol.messages import PREVIEW_SIDE, EditRequest

from .document import KritaDocument, Region
from .pixels import UnsupportedImage
from .settings import Settings

__all__ = ["Controller", "EngineState", "Observer", "RunOptions"]


class EngineState(Enum):
    DISCONNECTED = "disconnected"
    STARTING = "starting"
    CONNECTED = "connected"
    UNREACHABLE = "unreachable"
    VERSION_MISMATCH = "version mismatch"
    AUTH_FAILED = "authentication failed"


class Observer(Protocol):
    def on_status(self, state: EngineState, text: str) -> None: ...
    def on_offer(self, welcome: Welcome) -> None: ...
    def on_busy(self, busy: bool) -> None: ...
    def on_progress(self, fraction: float, text: str) -> None: ...
    def on_preview(self, width: int, height: int, rgba8: bytes) -> None: ...
    def on_message(self, text: str, error: bool) -> None: ...
    def on_live_preview(self, width: int, height: int, rgba8: bytes, text: str) -> None: ...
    def on_variations(self, shown: int | None, count: int) -> None: ...


@dataclass
class RunOptions:
    prompt: str
    method: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    variations: int = 1
    seed: int | None = None
    reference: Buffer | None = None  # rgba8
    pack: str | None = None


@dataclass
class _Job:
    id: str
    document: KritaDocument
    region: Region
    prompt: str
    started: float
    cancel_asked: float | None = None  # when the artist pressed Cancel


@dataclass
class _Preview:
    """A live preview on its way: at most one; a newer one cancels it."""

    id: str
    started: float


@dataclass
class _Choice:
    """The last result's variations, one shown, until the artist keeps one."""

    document: KritaDocument
    group: Any
    count: int
    shown: int = 0


#: while a started engine loads: how long one hello may block the UI, and how often one is
#: tried (the docker's timer ticks every 0.5 s)
STARTING_HELLO_S = 0.25
STARTING_RETRY_S = 2.0

#: seconds a cancelled edit waits for the engine to confirm before the docker lets it go
#: (a first edit loads the pack before it can see the cancel)
CANCEL_GIVE_UP_S = 10.0


class Controller:
    def __init__(self, observer: Observer, settings: Settings,
                 client_factory: Callable[..., EngineClient] = EngineClient,
                 launcher: Callable[[list[str], Path], Any] | None = None) -> None:
        self.observer = observer
        self.settings = settings
        self._client_factory = client_factory
        self._launcher = launcher or launch_detached
        self.client: EngineClient | None = None
        self.welcome: Welcome | None = None
        self.state = EngineState.DISCONNECTED
        self.job: _Job | None = None
        self.live: _Preview | None = None
        self.choice: _Choice | None = None
        self._starting_since: float | None = None
        self._engine_proc: Any = None
        self._engine_endpoint = ""  # the endpoint the engine this docker started serves
        self._last_try = 0.0  # when tick() last said hello to a starting engine

    # ------------------------------------------------------------------ connection

    @property
    def endpoint(self) -> str:
        return self.settings.current().endpoint or endpoints.default_endpoint()

    def _set_state(self, state: EngineState, text: str) -> None:
        self.state = state
        self.observer.on_status(state, text)

    def _new_client(self) -> EngineClient:
        engine = self.settings.current()
        curve = CurveKeys.from_settings(engine.server_key, engine.client_key)
        return self._client_factory(self.endpoint, curve=curve, connect_timeout=2.0,
                                    progress_timeout=self.settings.timeout_s,
                                    client_name="wordbrush-krita")

    def connect(self, start: bool = True) -> bool:
        """Try the engine once; start a local one when allowed. True when connected.

        A running edit follows the connection: the new client asks the engine for it
        (``fetch`` re-attaches the job to this client), or, where no engine answers, the
        edit is given up with a message rather than leaving the docker busy."""
        connected = self._connect(start)
        job = self.job
        if job is not None and connected and self.client is not None:
            try:
                self.client.fetch(job.id)
            except WordbrushError as exc:
                self._finish(f"the running edit was lost on reconnecting ({exc}); the "
                             "document was not changed", error=True)
        elif job is not None and not connected:
            self._finish("the running edit was lost: no engine answered on reconnecting; "
                         "the document was not changed", error=True)
        return connected

    def _connect(self, start: bool) -> bool:
        self.close_client()
        try:
            client = self._new_client()
        except (OSError, ValueError, WordbrushError) as exc:
            engine = self.settings.current()
            where = "the key files" if engine.server_key or engine.client_key \
                else "the engine's address"
            self._set_state(EngineState.UNREACHABLE, f"cannot use {where}: {exc}")
            return False
        try:
            # while a started engine loads, each try blocks Krita's UI thread: keep it short
            timeout = (STARTING_HELLO_S if self.state == EngineState.STARTING
                       else 1.0 if endpoints.is_local(self.endpoint) else 5.0)
            welcome = client.connect(timeout=timeout)
        except VersionMismatch as exc:
            client.close()
            self._set_state(EngineState.VERSION_MISMATCH, str(exc))
            return False
        except AuthFailed as exc:
            client.close()
            self._set_state(EngineState.AUTH_FAILED, str(exc))
            return False
        except (EngineUnavailable, Timeout, ProtocolError) as exc:
            client.close()
            if start and self._maybe_start_engine():
                return False
            self._set_state(EngineState.UNREACHABLE, f"no engine at {self.endpoint}: {exc}")
            return False
        self.client, self.welcome = client, welcome
        self._starting_since = None
        packs = ", ".join(p.name for p in welcome.packs) or "no packs"
        self._set_state(EngineState.CONNECTED,
                        f"connected to engine {welcome.engine_version} ({packs})")
        self.observer.on_offer(welcome)
        return True

    def _maybe_start_engine(self) -> bool:
        if not (self.settings.autostart and endpoints.is_local(self.endpoint)):
            return False
        if self._starting_since is not None:
            if time.monotonic() - self._starting_since > ENGINE_START_S:
                self._starting_since = None
                self._set_state(EngineState.UNREACHABLE,
                                f"the local engine did not answer within {ENGINE_START_S:.0f} s "
                                f"(see {engine_log('krita')})")
                return True
            return True  # still starting; tick() retries
        if self._engine_proc is not None and self._engine_proc.poll() is None \
                and self._engine_endpoint == self.endpoint:
            # started earlier and still not answering: wait on it, never start a second
            self._starting_since = time.monotonic()
            self._set_state(EngineState.STARTING, "waiting for the local engine started "
                                                  "earlier…")
            return True
        if not self.settings.engine_command:
            self._set_state(EngineState.UNREACHABLE,
                            f"no engine is running and {NOTHING_TO_START}")
            return True
        try:
            self._engine_proc = self._launcher(
                command_for(self.settings.engine_command, self.settings.current().endpoint),
                engine_log("krita", create=True))
        except OSError as exc:
            self._set_state(EngineState.UNREACHABLE, f"could not start the engine: {exc}")
            return True
        self._engine_endpoint = self.endpoint
        self._starting_since = time.monotonic()
        self._set_state(EngineState.STARTING, "starting the local engine…")
        return True

    def close_client(self) -> None:
        if self.client is not None:
            self.client.close()
        self.client = None
        self.live = None  # its answer went with the connection

    def shutdown(self) -> None:
        if self.job is not None and self.client is not None:
            with contextlib.suppress(WordbrushError):
                self.client.cancel(self.job.id)
        self.job = None
        self.cancel_preview()
        self.close_client()

    # ------------------------------------------------------------------ jobs

    def fileno(self) -> int | None:
        return self.client.fileno() if self.client is not None else None

    def framing_for(self, pack: str | None) -> dict | None:
        if self.welcome is None:
            return None
        info = self.welcome.pack(pack or self.welcome.default_pack or "")
        return info.framing if info else None

    def _request(self, document: Any, options: RunOptions, node: Any, say: Callable[[str], None]
                 ) -> tuple[KritaDocument, Region, EditRequest] | None:
        """The request for ``options`` on the active layer (or ``node``) and the selection;
        None (after ``say`` told why) when there is none to send."""
        if not options.prompt.strip() and options.reference is None:
            say("type a description (or choose a reference image)")
            return None
        if document is None:
            say("open an image first")
            return None
        doc = KritaDocument(document)
        try:
            region = doc.region(self.framing_for(options.pack), node,
                                self.welcome.limits if self.welcome else None)
        except (UnsupportedImage, ValueError) as exc:
            say(str(exc))
            return None
        if self.welcome is not None and not self.welcome.takes_layer(region.layer.format):
            say(f"the engine ({self.welcome.engine_version}) is older than this plugin and "
                f"cannot take this layer's pixels ({region.layer.format}): update it (run "
                "`python3 install.py` where it runs), or convert the image to 32-bit float")
            return None
        request = EditRequest(layer=region.layer, mask=region.mask, reference=options.reference,
                              prompt=options.prompt.strip(), method=options.method or None,
                              pack=options.pack, params=dict(options.params),
                              seed=options.seed, variations=options.variations,
                              offset=region.offset, layer_bounds=(0, 0, *region.canvas))
        return doc, region, request

    def _submit(self, request: EditRequest, say: Callable[[str], None]) -> str | None:
        assert self.client is not None
        try:
            return self.client.submit(request)
        except EngineUnavailable as exc:
            self._lost(f"the engine went away: {exc}")
        except WordbrushError as exc:  # rejected before sending (limits, validation)
            say(str(exc))
        return None

    def run(self, document: Any, options: RunOptions, node: Any = None) -> bool:
        """Send the active layer (or ``node``) and the selection; False (with a message)
        when it cannot."""
        def say(text: str) -> None:
            self.observer.on_message(text, True)

        if self.job is not None:
            say("an edit is already running; cancel it first")
            return False
        if self.client is None and not self.connect():
            say("the engine is not available; see the status line")
            return False
        built = self._request(document, options, node, say)
        if built is None:
            return False
        doc, region, request = built
        self.cancel_preview()  # the edit is what the artist waits for now
        if self.choice is not None:  # the earlier result's variations stay as they are
            self.choice = None
            self.observer.on_variations(None, 0)
        job_id = self._submit(request, say)
        if job_id is None:
            return False
        self.job = _Job(job_id, doc, region, options.prompt.strip(), time.monotonic())
        self.observer.on_busy(True)
        self.observer.on_progress(0.0, f"sent ({region.note})")
        self.pump()
        return True

    def preview(self, document: Any, options: RunOptions, node: Any = None) -> str | None:
        """Ask for a live preview of ``options``: one pass, one image, never a layer. An
        older preview still on its way is cancelled (the newest text wins). Returns why
        none was asked for (no engine, an edit running, nothing typed, ...), or None."""
        why: list[str] = []
        if self.job is not None:
            return "an edit is running"
        if self.client is None or self.welcome is None:
            return "no engine"
        if not self.welcome.previews:
            return (f"the engine ({self.welcome.engine_version}) makes no live previews: "
                    "update it (run `python3 install.py` where it runs)")
        built = self._request(document, options, node, why.append)
        if built is None:
            return why[0]
        self.cancel_preview()
        request = built[2]
        request.preview, request.variations = PREVIEW_SIDE, 1
        job_id = self._submit(request, why.append)
        if job_id is None:
            return why[0] if why else "the engine went away"
        self.live = _Preview(job_id, time.monotonic())
        self.pump()
        return None

    def cancel_preview(self) -> None:
        """Forget the preview on its way and tell the engine to drop it."""
        live, self.live = self.live, None
        if live is not None and self.client is not None:
            with contextlib.suppress(WordbrushError):
                self.client.cancel(live.id)

    def cancel(self) -> None:
        if self.job is None or self.client is None:
            return
        try:
            self.client.cancel(self.job.id)
            self.job.cancel_asked = self.job.cancel_asked or time.monotonic()
            self.observer.on_progress(0.0, "cancelling…")
        except WordbrushError as exc:
            self._finish(f"could not cancel: {exc}", error=True)
        self.pump()

    def _finish(self, text: str, error: bool) -> None:
        self.job = None
        self.observer.on_busy(False)
        self.observer.on_message(text, error)

    def _lost(self, text: str) -> None:
        self.close_client()
        self._set_state(EngineState.UNREACHABLE, text)
        if self.job is not None:
            self._finish(f"{text}; the document was not changed", error=True)

    # ------------------------------------------------------------------ events

    def pump(self) -> None:
        """Drain every pending event (call on socket activity and after every send)."""
        if self.client is None:
            return
        try:
            events = self.client.poll(0)
        except (EngineUnavailable, Timeout) as exc:
            self._lost(str(exc))
            return
        except AuthFailed as exc:
            self.close_client()
            self._set_state(EngineState.AUTH_FAILED, str(exc))
            if self.job is not None:
                self._finish(f"{exc}; the document was not changed", error=True)
            return
        for event in events:
            self._handle(event)

    def tick(self) -> None:
        """Slow timer: silence becomes a timeout; a starting engine is retried; a
        cancelled edit the engine has not confirmed in time is let go."""
        job = self.job
        if job is not None and job.document.closed():
            if self.client is not None:  # nobody will see its result: the engine may stop
                with contextlib.suppress(WordbrushError):
                    self.client.cancel(job.id)
            self._finish("the document was closed during the edit; it was cancelled",
                         error=False)
            return
        if job is not None and job.cancel_asked is not None \
                and time.monotonic() - job.cancel_asked > CANCEL_GIVE_UP_S:
            self._finish("cancelled (the engine had not confirmed; nothing of this edit "
                         "will be added)", error=False)
        if self.state == EngineState.STARTING:
            if self._engine_proc is not None and self._engine_proc.poll() is not None:
                self._starting_since = None
                self._engine_proc = None
                # it may have lost the endpoint to an engine started at the same time
                # (GIMP's, or `wordbrush serve`): that one serves as well
                if not self.connect(start=False):
                    self._set_state(EngineState.UNREACHABLE, "the local engine exited at "
                                    f"start-up (see {engine_log('krita')})")
                return
            if time.monotonic() - self._last_try >= STARTING_RETRY_S:
                self._last_try = time.monotonic()
                self.connect()
            return
        if self.client is None:
            return
        try:
            self.client.check_timeouts()
        except (Timeout, EngineUnavailable) as exc:
            self._lost(str(exc))
            return
        self.pump()

    def _handle(self, event: Any) -> None:
        job_id = getattr(event, "job", None) or getattr(event, "ref", None)
        if self.live is not None and job_id == self.live.id:
            self._handle_preview(event)
            return
        job = self.job
        if job is None or (getattr(event, "job", None) or getattr(event, "ref", None)) != job.id:
            return
        if isinstance(event, Progress):
            if event.worth_showing:
                self.observer.on_progress(event.fraction, event.message)
            if event.preview is not None and event.preview.format == "rgba8":
                p = event.preview
                self.observer.on_preview(p.width, p.height, bytes(p.data))
        elif isinstance(event, Result) and job.cancel_asked is not None:
            self._finish("cancelled; the document was not changed", error=False)
        elif isinstance(event, Result):
            self._apply(job, event)
        elif isinstance(event, Cancelled):
            self._finish("cancelled; the document was not changed", error=False)
        elif isinstance(event, EngineError):
            self._finish(f"the engine could not edit: {event.message}", error=True)

    def _handle_preview(self, event: Any) -> None:
        if isinstance(event, Result) and event.patches and event.info.get("preview"):
            self.live = None
            image = event.patches[0]
            text = f"preview: {event.info.get('method', '?')}"
            if note := strength_note(event.info):
                text += f", {note}"
            if warnings := event.warnings:
                text += f" (warning: {'; '.join(warnings)})"
            self.observer.on_live_preview(image.width, image.height, bytes(image.data), text)
        elif isinstance(event, Result):  # an engine that took the request as an edit
            self.live = None
            self.observer.on_message("the engine sent an edit for a preview: update it", True)
        elif isinstance(event, EngineError):
            self.live = None
            self.observer.on_message(f"no preview: {event.message}", False)
        elif isinstance(event, Cancelled):
            self.live = None

    def _apply(self, job: _Job, result: Result) -> None:
        try:
            inserted = job.document.insert_results(job.region.source, list(result.patches),
                                                   result.offset, job.prompt,
                                                   job.region.layout, job.region.canvas)
        except Exception as exc:  # a closed document, a deleted layer: say so, add nothing
            self._finish(f"the result could not be added: {exc}", error=True)
            return
        warnings = "; ".join(result.info.get("warnings") or [])
        seconds = time.monotonic() - job.started
        names = inserted.names
        text = f"added {len(names)} layer{'s' if len(names) > 1 else ''} in {seconds:.1f} s"
        if note := strength_note(result.info):
            text += f"; {note}"
        if warnings:
            text += f" (warning: {warnings})"
        self.observer.on_progress(1.0, "done")
        self._finish(text, error=False)
        if inserted.group is not None:
            self.choice = _Choice(job.document, inserted.group, len(names))
            self.observer.on_variations(0, len(names))

    # ------------------------------------------------------------------ variations

    def step_variation(self, delta: int) -> None:
        """Show the next (or previous) variation of the last result alone."""
        choice = self.choice
        if choice is None:
            return
        index = (choice.shown + delta) % choice.count
        try:
            choice.document.show_variation(choice.group, index)
        except Exception as exc:  # deleted, closed: nothing left to choose from
            self._drop_choice(str(exc))
            return
        choice.shown = index
        self.observer.on_variations(index, choice.count)

    def keep_variation(self, flatten: Callable[[Any, Any], Any] | None = None) -> None:
        """Keep the variation shown and remove the others, in one undo step."""
        choice = self.choice
        if choice is None:
            return
        self.choice = None
        self.observer.on_variations(None, 0)
        try:
            name = choice.document.keep_variation(choice.group, choice.shown, flatten)
        except Exception as exc:
            self.observer.on_message(str(exc), True)
            return
        self.observer.on_message(f"kept {name}; the other variations are removed (one undo "
                                 "step brings them back)", False)

    def _drop_choice(self, why: str) -> None:
        self.choice = None
        self.observer.on_variations(None, 0)
        self.observer.on_message(why, True)
