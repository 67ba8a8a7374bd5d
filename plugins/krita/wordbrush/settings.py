"""The plugin's settings: a small JSON file in Krita's app data folder.

``install.py`` writes the engine command (``engine_command``) and, for a remote engine,
the endpoint and key files; the docker's settings dialog edits the rest.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

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
    endpoint: str = ""  # empty: the local engine's default endpoint
    server_key: str = ""  # the remote engine's public key file (CURVE)
    client_key: str = ""  # this machine's secret key file (CURVE)
    autostart: bool = True  # start a local engine when none answers
    engine_command: list[str] = field(default_factory=list)  # written by install.py
    method: str = ""
    strength: float | None = None  # None: auto (the engine's automatic step)
    variations: int = 1
    seed: int | None = None
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

    def save(self, path: Path | None = None) -> None:
        path = path or default_settings_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        data = {k: v for k, v in asdict(self).items() if k != "note"}
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)

    @property
    def is_remote(self) -> bool:
        return bool(self.endpoint) and self.endpoint.startswith("tcp://") and not any(
            h in self.endpoint for h in ("127.0.0.1", "localhost", "[::1]"))
