"""Wordbrush for Krita: select a region, type a description, get a new layer.

Krita imports this package at start-up. It puts the vendored ``protocol`` (and pyzmq /
msgpack when install.py vendored them) on ``sys.path``, then registers the docker. If
pyzmq or msgpack is missing, the plugin still loads and its docker says what to run.
"""

from __future__ import annotations

import sys
from pathlib import Path

_VENDOR = Path(__file__).resolve().parent / "vendor"
if _VENDOR.is_dir() and str(_VENDOR) not in sys.path:
    sys.path.insert(0, str(_VENDOR))

try:
    from krita import DockWidgetFactory, DockWidgetFactoryBase, Krita  # type: ignore
except ImportError:  # imported outside Krita (tests): nothing to register
    Krita = None  # type: ignore[assignment]

MISSING: str | None = None
try:
    import msgpack  # noqa: F401
    import zmq  # noqa: F401

    import protocol  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installation
    MISSING = (f"wordbrush cannot start: {exc}. Run `python3 install.py` in the wordbrush "
               "folder to put pyzmq, msgpack and the protocol next to this plugin.")

if Krita is not None:
    if MISSING is None:
        from .docker import WordbrushDocker

        Krita.instance().addDockWidgetFactory(DockWidgetFactory(
            "wordbrush", DockWidgetFactoryBase.DockRight, WordbrushDocker))
    else:
        from .missing import MissingDocker

        Krita.instance().addDockWidgetFactory(DockWidgetFactory(
            "wordbrush", DockWidgetFactoryBase.DockRight, MissingDocker))
