"""Where the engine listens by default, and which endpoints count as local.

The default is local only: an ``ipc://`` socket in a per-user directory of mode 0700 on
POSIX systems, ``tcp://127.0.0.1:PORT`` where ipc is unavailable (Windows).
"""

from __future__ import annotations

import ipaddress
import os
import sys
import tempfile
from pathlib import Path

DEFAULT_TCP_PORT = 47615
ENDPOINT_ENV = "WORDBRUSH_ENDPOINT"


def ipc_supported() -> bool:
    return os.name == "posix"


def runtime_dir(create: bool = False) -> Path:
    """A per-user directory for the engine's socket; created with mode 0700 if asked."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    if base and os.path.isdir(base):
        path = Path(base) / "wordbrush"
    else:
        uid = os.getuid() if hasattr(os, "getuid") else 0
        path = Path(tempfile.gettempdir()) / f"wordbrush-{uid}"
    if create:
        path.mkdir(mode=0o700, exist_ok=True)
        st = path.stat()
        if hasattr(os, "getuid") and st.st_uid != os.getuid():
            raise PermissionError(f"{path} belongs to another user; refusing to use it")
        if st.st_mode & 0o077:
            os.chmod(path, 0o700)
    return path


def default_endpoint() -> str:
    """The engine endpoint to use when none is given: $WORDBRUSH_ENDPOINT or the local one."""
    env = os.environ.get(ENDPOINT_ENV)
    if env:
        return env
    if ipc_supported():
        return f"ipc://{runtime_dir() / 'engine.sock'}"
    return f"tcp://127.0.0.1:{DEFAULT_TCP_PORT}"


def prepare_endpoint(endpoint: str) -> None:
    """Make sure an ipc endpoint's directory exists with safe permissions (server side)."""
    if endpoint.startswith("ipc://"):
        path = Path(endpoint[len("ipc://"):])
        if path.parent == runtime_dir():
            runtime_dir(create=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)


def is_local(endpoint: str) -> bool:
    """True for ipc://, inproc:// and tcp:// on a loopback address."""
    if endpoint.startswith(("ipc://", "inproc://")):
        return True
    if not endpoint.startswith("tcp://"):
        return False
    host = endpoint[len("tcp://"):].rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # an interface name or hostname: not provably local


def describe(endpoint: str) -> str:
    """A short human description for status lines."""
    return "local engine" if is_local(endpoint) else f"remote engine at {endpoint}"


#: the longest ipc:// path the kernel takes (sun_path, less its NUL: 108 bytes on Linux,
#: 104 on macOS and the BSDs)
IPC_PATH_MAX = 107 if sys.platform.startswith("linux") else 103


def check_endpoint_syntax(endpoint: str, connect: bool = False) -> None:
    """A ValueError saying what is wrong with ``endpoint``; ``connect``: a client's, which
    needs a real port (``*`` is for binding)."""
    if not endpoint.startswith(("ipc://", "tcp://", "inproc://")):
        raise ValueError(
            f"endpoint {endpoint!r} must start with ipc://, tcp:// or inproc://"
        )
    if endpoint.startswith("ipc://") and sys.platform == "win32":
        raise ValueError("ipc:// endpoints are not available on Windows; use tcp://127.0.0.1:PORT")
    if endpoint.startswith("ipc://") and len(endpoint[len("ipc://"):].encode()) > IPC_PATH_MAX:
        raise ValueError(f"the socket path of {endpoint!r} is longer than the "
                         f"{IPC_PATH_MAX} bytes the system allows; use a shorter path")
    if endpoint.startswith("tcp://"):
        host, _, port = endpoint[len("tcp://"):].rpartition(":")
        wildcard = port == "*" and not connect
        if not host or any(c.isspace() for c in host) or \
                not (wildcard or (port.isdigit() and int(port) < 65536)):
            raise ValueError(f"endpoint {endpoint!r} needs a host and a port, "
                             "e.g. tcp://127.0.0.1:47615")
