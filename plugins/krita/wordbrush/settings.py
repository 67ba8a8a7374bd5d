"""The plugin's settings: a small JSON file in Krita's app data folder.

``install.py`` writes the engine command (``engine_command``) and, for a remote engine,
the endpoint and key files; the docker's settings dialog edits the rest.
"""

from __future__ import annotations

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


@dataclass
class Settings:
    endpoint: str = ""  # empty: the local engine's default endpoint
    server_key: str = ""  # the remote engine's public key file (CURVE)
    client_key: str = ""  # this machine's secret key file (CURVE)
    autostart: bool = True  # start a local engine when none answers
    engine_command: list[str] = field(default_factory=list)  # written by install.py
    method: str = ""
    strength: float = 1.0
    variations: int = 1
    seed: int | None = None
    timeout_s: float = 30.0

    @classmethod
    def load(cls, path: Path | None = None) -> Settings:
        path = path or default_settings_path()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return cls()
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {k: v for k, v in data.items() if k in known}
        try:
            return cls(**values)
        except TypeError:
            return cls()

    def save(self, path: Path | None = None) -> None:
        path = path or default_settings_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)

    @property
    def is_remote(self) -> bool:
        return bool(self.endpoint) and self.endpoint.startswith("tcp://") and not any(
            h in self.endpoint for h in ("127.0.0.1", "localhost", "[::1]"))
