"""Starting a local engine for an editor: ``wordbrush serve`` detached from the editor.

Both plug-ins start the engine the same way when none answers at a local endpoint and
``install.py`` told them how (``engine_command`` in their ``wordbrush.json``). The engine
outlives the editor's call: it keeps its models loaded for the next edit and serves other
clients; ``wordbrush serve`` stops it on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from .endpoints import runtime_dir

__all__ = ["ENGINE_START_S", "LOG_KEEP_BYTES", "NOTHING_TO_START", "command_for",
           "engine_log", "launch_detached"]

#: how long an editor waits for a local engine it started to answer (the first start loads
#: torch and the pack's models)
ENGINE_START_S = 90.0

#: the end of an editor's sentence where no engine answers and install.py gave it none
NOTHING_TO_START = ("none is configured to start: run `python3 install.py` in the wordbrush "
                    "folder, or start `wordbrush serve` yourself")


#: a log over this size is moved to ``<name>.1`` (replacing the one before) when the editor
#: starts the next engine, so that a year of autostarts does not fill the disk
LOG_KEEP_BYTES = 1 << 20


def engine_log(editor: str, create: bool = False) -> Path:
    """Where the engine an editor starts writes its output, e.g. for ``"gimp"``
    ``gimp-engine.log`` in the user's own runtime folder (mode 0700, beside the engine's
    socket), never a fixed name in the shared temp folder, where another user's file of
    that name would stop the start. ``create`` makes the folder (checking that it is the
    user's); an OSError then says why it cannot be used."""
    return runtime_dir(create=create) / f"{editor}-engine.log"


def command_for(command: list[str], endpoint: str) -> list[str]:
    """``command`` (install.py's ``wordbrush serve``) serving ``endpoint``, the one the
    editor will connect to ("": the default endpoint, which the engine serves by itself)."""
    if not endpoint or "--endpoint" in command:
        return list(command)
    return [*command, "--endpoint", endpoint]


def launch_detached(command: list[str], log: Path) -> subprocess.Popen:
    """Start ``command`` in its own session (process group on Windows), its output
    appended to ``log`` (moved to ``<log>.1`` first once over :data:`LOG_KEEP_BYTES`), so
    that it outlives the editor's process and keeps serving."""
    with contextlib.suppress(OSError):  # absent, or held open by an engine on Windows
        if log.stat().st_size > LOG_KEEP_BYTES:
            os.replace(log, log.with_name(log.name + ".1"))
    log_file = open(log, "ab")  # noqa: SIM115 - handed to the child process
    kwargs: dict[str, Any] = {"stdout": log_file, "stderr": subprocess.STDOUT,
                              "stdin": subprocess.DEVNULL}
    if sys.platform == "win32":
        kwargs["creationflags"] = 0x00000008 | 0x00000200  # DETACHED_PROCESS | NEW_PROCESS_GROUP
    else:
        kwargs["start_new_session"] = True
    try:
        return subprocess.Popen(command, **kwargs)
    finally:
        log_file.close()  # the child holds its own copy
