"""What the GIMP plug-in does, without GIMP: read the region, talk to the engine, add layers.

``wordbrush.py`` (the plug-in GIMP runs) wraps the GIMP API in a :class:`GimpHost`-shaped
object and calls :func:`edit_selection`; tests call it with a fake host. Every failure is a
:class:`PluginError` with a sentence for the user: GIMP shows it, nothing is half-added.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from protocol import endpoints
from protocol.client import CurveKeys, EngineClient
from protocol.engines import chosen_engine
from protocol.errors import (
    AuthFailed,
    EngineRejected,
    EngineUnavailable,
    InvalidRequest,
    JobCancelled,
    Timeout,
    VersionMismatch,
    WordbrushError,
)
from protocol.events import Progress, Welcome, strength_note
from protocol.framing import Buffer, area_too_large
from protocol.launch import (
    ENGINE_START_S,
    NOTHING_TO_START,
    command_for,
    engine_log,
    launch_detached,
)
from protocol.messages import EditRequest, parse_assignments
from protocol.regions import Box, Framing, context_box

__all__ = ["EditOptions", "GimpHost", "PixelFormat", "PluginError", "edit_selection",
           "load_settings", "pixel_format", "variation_to_keep", "variation_to_show"]

LAYER_PREFIX = "[wordbrush] "

#: GIMP precision family -> (babl component type, wire format)
COMPONENTS = {
    "u8": ("u8", "rgba8"),
    "u16": ("u16", "rgba16"),
    "u32": ("float", "rgbaf32"),
    "half": ("half", "rgbaf16"),
    "float": ("float", "rgbaf32"),
    "double": ("float", "rgbaf32"),
}


@dataclass(frozen=True)
class PixelFormat:
    """How the layer is read and the patch written (babl), and how it travels (wire)."""

    babl: str  # e.g. "R'G'B'A u8"
    wire: str  # e.g. "rgba8"
    transfer: str  # "srgb" or "linear"


class PluginError(Exception):
    """A failure to show the user (GIMP's error dialog / the PDB status message)."""


@dataclass
class EditOptions:
    prompt: str
    method: str = ""
    strength: float = -1.0  # -1: automatic (the engine's step, reported in the result)
    variations: int = 1
    seed: int = -1  # -1: random
    endpoint: str = ""
    pack: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    params_text: str = ""  # "steps=60 keep_unnamed=false": the procedure's free-form field
    timeout_s: float = 60.0
    server_key: str = ""  # remote engine: its public key file (CURVE)
    client_key: str = ""  # remote engine: this machine's secret key file
    engine_command: list[str] = field(default_factory=list)  # written by install.py
    autostart: bool = True  # start a local engine when none answers
    #: a named engine of the settings ("" : the one in use there; "local": the local one);
    #: an endpoint given as an argument wins over it
    engine: str = ""

    def with_settings(self, settings: dict[str, Any]) -> EditOptions:
        """Fill what the procedure's arguments left empty from ``wordbrush.json``: the
        endpoint and keys of the named engine (``engine``, else the one in use there)."""
        filled = dict(self.__dict__)
        try:
            chosen = chosen_engine(settings, self.engine or None)
        except ValueError as exc:
            raise PluginError(str(exc)) from None
        if not filled["endpoint"]:
            for key in ("endpoint", "server_key", "client_key"):
                filled[key] = filled[key] or getattr(chosen, key)
        command = settings.get("engine_command")
        if not filled["engine_command"] and isinstance(command, list) \
                and all(isinstance(part, str) for part in command):
            filled["engine_command"] = list(command)
        if isinstance(settings.get("autostart"), bool):
            filled["autostart"] = settings["autostart"]
        return EditOptions(**filled)


def load_settings(folder: Path) -> dict[str, Any]:
    """``wordbrush.json`` next to the plug-in (written by install.py); {} if absent."""
    try:
        data = json.loads((folder / "wordbrush.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class GimpHost(Protocol):
    """The few GIMP calls the plug-in needs (``wordbrush.py`` implements them)."""

    def precision(self) -> str: ...  # GIMP's nick: "u8-non-linear", "half-linear", ...
    def own_profile(self) -> bool: ...  # the image has a colour profile other than sRGB
    def is_rgb(self) -> bool: ...
    def gone(self) -> str | None: ...  # why the image or layer can no longer be edited
    def drawable_box(self) -> Box: ...  # the drawable's x, y (image coords), w, h
    def selection_box(self) -> Box | None: ...  # image coords, None when nothing selected
    def read_pixels(self, box: Box, babl: str) -> bytes: ...  # image coords
    def read_mask(self, box: Box) -> bytes: ...  # "Y u8", image coords
    def add_layers(self, names: list[str], patches: list[tuple[bytes, Box]], babl: str,
                   group_name: str | None) -> None: ...
    def progress(self, fraction: float, text: str) -> None: ...
    # the method's preview of the crop, as it runs (the dialog shows it small)
    def preview(self, width: int, height: int, rgba8: bytes) -> None: ...
    def idle(self) -> None: ...  # about ten times a second while the engine works


def pixel_format(precision: str, own_profile: bool = False) -> PixelFormat:
    """The format for GIMP's precision nick ("u8-non-linear", "u16-linear", "half-perceptual";
    the component alone, "u8", reads as the sRGB curve).

    Pixels keep the image's own depth and tone curve: a linear image is read as linear
    light (through the sRGB curve, 8-bit values would round), half floats as half floats.
    An image with a colour profile of its own is read as float, which babl does not clip
    to sRGB's gamut."""
    family, _, curve = precision.partition("-")
    try:
        component, wire = COMPONENTS[family]
    except KeyError:
        raise PluginError(f"unsupported image precision {precision!r}") from None
    if own_profile and component in ("u8", "u16"):
        component, wire = "float", "rgbaf32"
    linear = curve == "linear"
    model = "RGBA" if linear else "R'G'B'A"
    return PixelFormat(f"{model} {component}", wire, "linear" if linear else "srgb")


def _connect(open_client: Callable[[], EngineClient], endpoint: str, options: EditOptions,
             host: GimpHost, launcher: Callable[[list[str], Path], Any]
             ) -> tuple[EngineClient, Welcome]:
    """A connected client and the engine's welcome; where no engine answers at a local
    endpoint, the one ``install.py`` configured is started and waited for, with progress."""
    if answered := _answer(open_client):
        return answered
    if not (options.autostart and endpoints.is_local(endpoint)):
        raise PluginError(f"no wordbrush engine answers at {endpoint}. Start one with "
                          "`wordbrush serve` (or check the endpoint)")
    if not options.engine_command:
        raise PluginError(f"no wordbrush engine answers at {endpoint} and {NOTHING_TO_START}")
    try:
        log = engine_log("gimp", create=True)
        proc = launcher(command_for(options.engine_command, options.endpoint), log)
    except OSError as exc:
        raise PluginError(f"no wordbrush engine answers at {endpoint}, and the one "
                          f"install.py configured could not start ({exc}); start "
                          "`wordbrush serve` yourself") from None
    started = time.monotonic()
    while True:
        waited = time.monotonic() - started
        host.progress(0.0, f"starting the local engine (it loads its models)… {waited:.0f} s")
        exited = proc.poll() is not None
        # once more after an exit: it may have lost the endpoint to another engine
        if answered := _answer(open_client):
            return answered
        if exited:
            raise PluginError(f"the local engine exited at start-up (see {log})")
        if time.monotonic() - started > ENGINE_START_S:
            raise PluginError(f"the local engine did not answer within {ENGINE_START_S:.0f} s "
                              f"(see {log})")


def _answer(open_client: Callable[[], EngineClient]) -> tuple[EngineClient, Welcome] | None:
    """A new client and the engine's welcome, or None (the client closed) where no engine
    answers."""
    client = open_client()
    try:
        return client, _hello(client)
    except (EngineUnavailable, Timeout):
        client.close()
        return None


def _hello(client: EngineClient) -> Welcome:
    """``client.connect()``, its refusals as sentences; no answer is left to the caller."""
    try:
        return client.connect()
    except VersionMismatch as exc:
        client.close()
        raise PluginError(f"the engine speaks another protocol version: {exc}") from None
    except AuthFailed as exc:
        client.close()
        raise PluginError(f"the engine refused this machine's key: {exc}") from None
    except (EngineUnavailable, Timeout):
        raise  # the caller may start an engine
    except WordbrushError as exc:  # an answer that is not a welcome
        client.close()
        raise PluginError(f"the engine at {client.endpoint} did not greet us: {exc}") from None


def edit_selection(host: GimpHost, options: EditOptions,
                   client_factory: Callable[..., EngineClient] = EngineClient,
                   launcher: Callable[[list[str], Path], Any] = launch_detached,
                   cancel: threading.Event | None = None) -> str:
    """Run one edit; returns the sentence for the status. Raises PluginError. Setting
    ``cancel`` (the dialog's Cancel, from ``host.idle``) stops the job; nothing is added."""
    if not options.prompt.strip():
        raise PluginError("type a description of what the selection should become")
    if not host.is_rgb():
        raise PluginError("wordbrush edits RGB images: use Image > Mode > RGB first")
    fmt = pixel_format(host.precision(), host.own_profile())
    endpoint = options.endpoint or endpoints.default_endpoint()
    try:
        curve = CurveKeys.from_settings(options.server_key, options.client_key)
    except (OSError, ValueError, WordbrushError) as exc:
        raise PluginError(f"cannot use the engine's key files: {exc}") from None

    def open_client() -> EngineClient:
        try:
            return client_factory(endpoint, curve=curve, connect_timeout=3.0,
                                  progress_timeout=options.timeout_s,
                                  client_name="wordbrush-gimp")
        except ValueError as exc:  # the endpoint's syntax
            raise PluginError(f"the engine's address: {exc}") from None

    client, welcome = _connect(open_client, endpoint, options, host, launcher)
    try:
        pack = welcome.pack(options.pack or welcome.default_pack or "")
        drawable = host.drawable_box()
        selection = host.selection_box()
        if selection is not None:
            selection = selection.intersect(drawable)
            if selection.empty:
                raise PluginError("the selection does not touch the active layer")
            box = context_box(selection.translate(-drawable.x, -drawable.y), drawable.w,
                              drawable.h, Framing.from_dict(pack.framing if pack else None))
            box = box.translate(drawable.x, drawable.y)
        else:
            box = drawable
        if why := area_too_large(box.w, box.h, fmt.wire, welcome.limits):
            raise PluginError(why)
        pixels = host.read_pixels(box, fmt.babl)
        mask = Buffer("mask", box.w, box.h, "a8", host.read_mask(box)) if selection else None
        params = dict(options.params)
        method = options.method or welcome.method_for(options.pack or None) or ""
        info = welcome.method(method)
        if options.params_text.strip():
            if info is None:
                raise PluginError(f"the engine has no method {method!r}; it offers: "
                                  + ", ".join(m.id for m in welcome.methods))
            try:
                specs = welcome.param_specs(method) or ()
                params.update(parse_assignments(options.params_text, specs))
            except InvalidRequest as exc:
                raise PluginError(f"method options: {exc}") from None
        if info is not None and info.param("strength") is not None and options.strength >= 0:
            params.setdefault("strength", options.strength)
        request = EditRequest(
            layer=Buffer("layer", box.w, box.h, fmt.wire, pixels, fmt.transfer), mask=mask,
            prompt=options.prompt.strip(), method=method or None,
            pack=options.pack or None, params=params,
            seed=None if options.seed < 0 else options.seed, variations=options.variations,
            offset=(box.x, box.y), layer_bounds=tuple(drawable))
        started = time.monotonic()

        def on_progress(p: Progress) -> None:
            if p.worth_showing:
                host.progress(p.fraction, p.message)
            if p.preview is not None and p.preview.format == "rgba8":
                host.preview(p.preview.width, p.preview.height, bytes(p.preview.data))

        try:
            result = client.edit(request, on_progress=on_progress, cancel=cancel,
                                 on_idle=host.idle)
        except EngineRejected as exc:
            raise PluginError(f"the engine could not edit: {exc}") from None
        except Timeout as exc:
            raise PluginError(f"the engine stopped answering ({exc}); nothing was changed"
                              ) from None
        except EngineUnavailable as exc:
            raise PluginError(f"the engine went away ({exc}); nothing was changed") from None
        except JobCancelled:
            raise PluginError("the edit was cancelled; nothing was changed") from None
        except WordbrushError as exc:
            raise PluginError(str(exc)) from None
    finally:
        client.close()
    # GIMP stays usable during the edit: the patch lands only where it was made for
    if why := host.gone():
        raise PluginError(f"{why}; nothing was added")
    if host.drawable_box() != drawable or pixel_format(host.precision(),
                                                       host.own_profile()) != fmt:
        raise PluginError("the layer was moved, resized or converted during the edit; "
                          "nothing was added (run the edit again)")
    for p in result.patches:
        if p.format != fmt.wire or p.transfer != fmt.transfer:
            raise PluginError(f"the engine answered in {p.format}/{p.transfer}, not the "
                              f"{fmt.wire}/{fmt.transfer} asked for; nothing was added")
    name = LAYER_PREFIX + options.prompt.strip()
    patches = [(bytes(p.data), Box(result.offset[0], result.offset[1], p.width, p.height))
               for p in result.patches]
    names = [name] if len(patches) == 1 else [f"{name} #{i + 1}" for i in range(len(patches))]
    host.add_layers(names, patches, fmt.babl, name if len(patches) > 1 else None)
    warning = "; ".join(result.warnings)
    text = (f"added {len(patches)} layer{'s' if len(patches) > 1 else ''} in "
            f"{time.monotonic() - started:.1f} s")
    if note := strength_note(result.info):
        text += f"; {note}"
    return text + (f" (warning: {warning})" if warning else "")


# ------------------------------------------------------------------------- variations
# An edit with several variations adds a layer group with the first one visible; the
# artist steps through them (Filters > Wordbrush > Show Next Variation) and keeps one
# (Keep Shown Variation), which takes it out of the group and removes the group with the
# others, in one undo step. These choose; wordbrush.py moves GIMP's layers.

NOT_A_GROUP = ("select a wordbrush variations group (the layer group an edit with several "
               "variations adds) or one of its layers")


def variation_to_show(visible: list[bool], step: int = 1) -> int:
    """The variation to show alone after stepping ``step`` from the one shown now (the
    first visible; none visible counts as before the first), round the group."""
    if not visible:
        raise PluginError("the variations group is empty; nothing to show")
    shown = visible.index(True) if any(visible) else -1 if step > 0 else 0
    return (shown + step) % len(visible)


def variation_to_keep(visible: list[bool], selected: int | None = None) -> int:
    """The variation to keep: the one selected in the Layers dock, else the one shown."""
    if not visible:
        raise PluginError("the variations group is empty; nothing to keep")
    if selected is not None:
        return selected
    if not any(visible):
        raise PluginError("no variation is shown: show the one to keep (its eye), or "
                          "select it, then keep it")
    return visible.index(True)
