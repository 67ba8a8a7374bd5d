"""Named engines: the list of engines a plug-in can use, and which one it uses now.

A studio artist switches between the local engine and one or more remote ones (a GPU box,
a cluster front) with one choice in a drop-down, not by editing an endpoint. Both
plug-ins keep the list in their ``wordbrush.json`` and read it through this module;
``install.py --endpoint`` adds one. Standard library only (vendored into the editors,
imported by install.py).

In the settings file::

    "engines": [{"name": "studio", "endpoint": "tcp://gpubox:47615",
                 "server_key": "/path/server.key", "client_key": "/path/me.key_secret"}],
    "engine": "studio"        # the one in use; "" or "local": the local engine

The older single ``endpoint`` / ``server_key`` / ``client_key`` of a settings file is read
as an engine of its own, named after its host.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["LOCAL", "NamedEngine", "add_engine", "chosen_engine", "engine_list"]

#: the name of the local engine (started by the plug-in where none answers)
LOCAL = "local"


@dataclass(frozen=True)
class NamedEngine:
    name: str
    endpoint: str = ""  # "": the local engine's default endpoint
    server_key: str = ""  # a remote engine's public key file (CURVE)
    client_key: str = ""  # this machine's secret key file

    @property
    def is_local(self) -> bool:
        return self.name == LOCAL

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def _host(endpoint: str) -> str:
    """"gpubox" of "tcp://gpubox:47615" (the name a legacy or unnamed engine gets)."""
    rest = endpoint.split("://", 1)[-1]
    host = rest.rsplit(":", 1)[0] if ":" in rest else rest
    return host.strip("[]") or endpoint


def engine_list(settings: Mapping[str, Any]) -> list[NamedEngine]:
    """The local engine, then the named ones, then a legacy single endpoint not among
    them; entries that are not well formed are left out."""
    out = [NamedEngine(LOCAL)]
    names = {LOCAL}
    for item in settings.get("engines") or []:
        if not isinstance(item, Mapping):
            continue
        name, endpoint = item.get("name"), item.get("endpoint")
        if not isinstance(name, str) or not name.strip() or name in names \
                or not isinstance(endpoint, str) or not endpoint.strip():
            continue
        keys = {k: item.get(k) if isinstance(item.get(k), str) else ""
                for k in ("server_key", "client_key")}
        out.append(NamedEngine(name.strip(), endpoint.strip(), **keys))
        names.add(name.strip())
    legacy = settings.get("endpoint")
    if isinstance(legacy, str) and legacy.strip() and \
            all(e.endpoint != legacy.strip() for e in out):
        name = _host(legacy.strip())
        while name in names:
            name += "'"
        keys = {k: settings.get(k) if isinstance(settings.get(k), str) else ""
                for k in ("server_key", "client_key")}
        out.append(NamedEngine(name, legacy.strip(), **keys))
    return out


def chosen_engine(settings: Mapping[str, Any], name: str | None = None) -> NamedEngine:
    """The engine ``name`` names (default: the settings' ``engine``; else the legacy
    endpoint where there is one, else the local engine). An unknown name is a
    ValueError listing the known ones."""
    engines = engine_list(settings)
    wanted = name if name is not None else settings.get("engine")
    if not isinstance(wanted, str) or not wanted.strip():
        legacy = settings.get("endpoint")
        if isinstance(legacy, str) and legacy.strip():
            return next(e for e in engines if e.endpoint == legacy.strip())
        return engines[0]
    for engine in engines:
        if engine.name == wanted.strip():
            return engine
    raise ValueError(f"no engine named {wanted!r}; the plug-in knows "
                     f"{', '.join(e.name for e in engines)}")


def add_engine(settings: Mapping[str, Any], engine: NamedEngine,
               choose: bool = True) -> dict[str, Any]:
    """The settings with ``engine`` in the list (replacing one of its name) and, with
    ``choose``, in use."""
    if engine.is_local or not engine.endpoint:
        raise ValueError("a named engine needs a name other than 'local' and an endpoint")
    out = dict(settings)
    kept = [e for e in engine_list(settings)[1:] if e.name != engine.name]
    out["engines"] = [e.to_dict() for e in [*kept, engine]]
    if choose:
        out["engine"] = engine.name
    return out
