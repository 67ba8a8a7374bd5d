"""The registry of edit methods: one file per method in this package.

Built-in methods register themselves on import (see :data:`BUILTIN_MODULES`); tests may
register extra methods with :func:`register`.
"""

from __future__ import annotations

import importlib

from .base import CancelFlag, Cancelled, EditMethod, MethodInputs, MethodOutput, Param

__all__ = [
    "CancelFlag",
    "Cancelled",
    "EditMethod",
    "MethodInputs",
    "MethodOutput",
    "Param",
    "available",
    "get",
    "register",
]

#: modules holding the shipped methods; each defines one EditMethod subclass and
#: registers it. Listed here (not discovered) so that the engine's offer is explicit.
BUILTIN_MODULES: tuple[str, ...] = (
    "clipinverter", "paint_by_word", "latent_optimization", "global_directions", "feu",
)

_registry: dict[str, type[EditMethod]] = {}
_builtins_loaded = False


def register(cls: type[EditMethod]) -> type[EditMethod]:
    """Class decorator: make a method available to the engine under ``cls.id``."""
    if cls.id in _registry and _registry[cls.id] is not cls:
        raise ValueError(f"method id {cls.id!r} is already registered")
    _registry[cls.id] = cls
    return cls


def unregister(method_id: str) -> None:
    _registry.pop(method_id, None)


def _load_builtins() -> None:
    global _builtins_loaded
    if not _builtins_loaded:
        for name in BUILTIN_MODULES:
            importlib.import_module(f"{__name__}.{name}")
        _builtins_loaded = True


def available() -> dict[str, type[EditMethod]]:
    _load_builtins()
    return dict(_registry)


def get(method_id: str) -> type[EditMethod] | None:
    _load_builtins()
    return _registry.get(method_id)
