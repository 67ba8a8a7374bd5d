"""CURVE keys for a remote engine (``wordbrush keys ...``).

Layout of the keys folder (default ``$XDG_CONFIG_HOME/wordbrush/keys``, mode 0700)::

    server.key            the engine's public key: give it to every artist machine
    server.key_secret     the engine's secret key (0600): stays on the engine box
    clients/NAME.key      allowed client public keys: the engine's ZAP allow-list
    client-secrets/NAME.key_secret   a client's key pair (0600): copy it to that machine

``wordbrush serve`` on a non-loopback TCP endpoint uses ``server.key_secret`` and
``clients/`` from this folder unless ``--server-key`` / ``--allow-dir`` say otherwise.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

__all__ = ["AllowList", "KeyError_", "KeysFolder", "default_keys_dir"]

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class KeyError_(Exception):
    pass


def default_keys_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "wordbrush" / "keys"


def _create_pair(folder: Path, name: str) -> tuple[Path, Path]:
    """A ZeroMQ certificate pair written atomically, the secret file 0600."""
    import zmq.auth

    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        public, secret = zmq.auth.create_certificates(tmp, name)
        os.chmod(secret, 0o600)  # pyzmq writes it 0644
        os.chmod(public, 0o644)
        dest_pub = folder / Path(public).name
        dest_sec = folder / Path(secret).name
        shutil.move(secret, dest_sec)
        shutil.move(public, dest_pub)
    return dest_pub, dest_sec


class KeysFolder:
    def __init__(self, root: Path | None = None) -> None:
        self.root = root or default_keys_dir()

    @property
    def server_public(self) -> Path:
        return self.root / "server.key"

    @property
    def server_secret(self) -> Path:
        return self.root / "server.key_secret"

    @property
    def allow_dir(self) -> Path:
        return self.root / "clients"

    @property
    def client_secrets(self) -> Path:
        return self.root / "client-secrets"

    def _prepare(self) -> None:
        for folder in (self.root, self.allow_dir, self.client_secrets):
            folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        os.chmod(self.client_secrets, 0o700)

    def init(self, force: bool = False) -> Path:
        """The server key pair (kept if it exists, unless ``force``)."""
        self._prepare()
        if self.server_secret.exists() and not force:
            return self.server_public
        _create_pair(self.root, "server")
        return self.server_public

    def add_client(self, name: str) -> Path:
        """A client key pair: public key into the allow-list, the pair in client-secrets/."""
        if not NAME.match(name):
            raise KeyError_(f"client names are letters, digits, '.', '_' and '-': {name!r}")
        self._prepare()
        if (self.allow_dir / f"{name}.key").exists():
            raise KeyError_(f"a client called {name!r} exists; remove it first")
        public, secret = _create_pair(self.client_secrets, name)
        shutil.copy2(public, self.allow_dir / public.name)
        public.unlink()
        return secret

    def remove_client(self, name: str) -> bool:
        if not NAME.match(name):  # "../server" would remove the engine's own key pair
            raise KeyError_(f"client names are letters, digits, '.', '_' and '-': {name!r}")
        found = False
        for path in (self.allow_dir / f"{name}.key",
                     self.client_secrets / f"{name}.key_secret"):
            if path.exists():
                path.unlink()
                found = True
        return found

    def clients(self) -> list[str]:
        if not self.allow_dir.is_dir():
            return []
        return sorted(p.stem for p in self.allow_dir.glob("*.key"))


class AllowList:
    """The public keys in an engine's allow-list folder, read again at every CURVE
    handshake (a pyzmq credentials provider), so that ``keys add-client`` lets a new
    client in and ``keys remove-client`` locks one out without restarting the engine. A
    file that is not a key is skipped."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def keys(self) -> set[bytes]:
        import zmq.auth

        found: set[bytes] = set()
        for path in sorted(self.folder.glob("*.key")):
            try:
                public, _ = zmq.auth.load_certificate(str(path))
            except (OSError, ValueError):
                continue
            found.add(public)
        return found

    def callback(self, domain: str, key: bytes) -> bool:
        """Whether the client key ``key`` (z85) is allowed."""
        return key in self.keys()
