"""The plugin's settings: a small JSON file in Krita's app data folder.

``install.py`` writes the engine command (``engine_command``) and, for a remote engine,
a named engine (``protocol.engines``); the docker's drop-down switches engines and its
dialog adds one; the docker keeps the rest.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from protocol.engines import LOCAL, NamedEngine, add_engine, chosen_engine, engine_list

__all__ = ["Settings", "default_settings_path"]

FILE_NAME = "wordbrush.json"


def default_settings_path() -> Path:
    """``$WORDBRUSH_KRITA_SETTINGS``, else next to the plugin (where install.py writes it)."""
    env = os.environ.get("WORDBRUSH_KRITA_SETTINGS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent / FILE_NAME


def _fits(value: Any, name: str) -> bool:
    """Whether ``value`` is of the kind the field ``name`` holds."""
    if name == "engine_command":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if name == "seed":
        return value is None or (isinstance(value, int) and not isinstance(value, bool))
    if name == "engines":
        return isinstance(value, list) and all(isinstance(v, dict) for v in value)
    if name == "strength":
        return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)
                                 and 0 <= value <= 2)
    default = getattr(Settings, name)
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool) and value >= 1
    return isinstance(value, str)


@dataclass
class Settings:
    # an engine of older settings (read as one of the named engines: protocol.engines)
    endpoint: str = ""  # empty: the local engine's default endpoint
    server_key: str = ""  # the remote engine's public key file (CURVE)
    client_key: str = ""  # this machine's secret key file (CURVE)
    #: the named engines ({"name", "endpoint", "server_key", "client_key"}) and the one in
    #: use ("" or "local": the local engine), switched in the docker's drop-down
    engines: list[dict[str, str]] = field(default_factory=list)
    engine: str = ""
    autostart: bool = True  # start a local engine when none answers
    engine_command: list[str] = field(default_factory=list)  # written by install.py
    method: str = ""
    strength: float | None = None  # None: auto (the engine's automatic step)
    variations: int = 1
    seed: int | None = None
    live_preview: bool = True  # the docker previews the prompt as the artist types
    timeout_s: float = 30.0

    #: what was wrong with the file as loaded ("" when nothing): the docker shows it
    note: str = field(default="", compare=False, repr=False)

    @classmethod
    def load(cls, path: Path | None = None) -> Settings:
        """The settings in ``path``; a value of the wrong kind is dropped (its default
        used), and a file that is not a JSON object is kept aside as ``<name>.bad`` so the
        next save does not lose what install.py wrote there. Either way ``note`` says so."""
        path = path or default_settings_path()
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return cls()
        except OSError as exc:
            return cls(note=f"cannot read {path} ({exc}); using the defaults")
        try:
            data = json.loads(raw.decode("utf-8"))
        except ValueError:  # not UTF-8, or not JSON
            data = None
        if not isinstance(data, dict):
            bad = path.with_name(path.name + ".bad")
            with contextlib.suppress(OSError):
                bad.write_bytes(raw)
            return cls(note=f"{path} is not a settings file (kept as {bad.name}); using "
                            "the defaults")
        values: dict[str, Any] = {}
        dropped: list[str] = []
        for f in fields(cls):
            if f.name == "note" or f.name not in data:
                continue
            if _fits(data[f.name], f.name):
                values[f.name] = data[f.name]
            else:
                dropped.append(f.name)
        note = f"ignored {', '.join(dropped)} in {path} (not the right kind)" if dropped else ""
        return cls(**values, note=note)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "note"}

    def current(self) -> NamedEngine:
        """The engine in use (its endpoint and keys); the local one where the name is not
        known any more (an engine removed by hand from the file)."""
        try:
            return chosen_engine(self.as_dict())
        except ValueError:
            return NamedEngine(LOCAL)

    def known_engines(self) -> list[NamedEngine]:
        return engine_list(self.as_dict())

    def choose(self, name: str) -> None:
        """Use the engine ``name`` (one of :meth:`known_engines`). An older file's single
        endpoint joins the named engines first, so that switching away keeps it."""
        if self.endpoint:
            legacy = chosen_engine({**self.as_dict(), "engine": ""})
            self.engines = add_engine(self.as_dict(), legacy, choose=False)["engines"]
            self.endpoint = self.server_key = self.client_key = ""
        self.engine = "" if name == LOCAL else name

    def save(self, path: Path | None = None) -> None:
        path = path or default_settings_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        data = self.as_dict()
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)

    @property
    def is_remote(self) -> bool:
        return bool(self.endpoint) and self.endpoint.startswith("tcp://") and not any(
            h in self.endpoint for h in ("127.0.0.1", "localhost", "[::1]"))
