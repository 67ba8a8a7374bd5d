"""A remote engine with CURVE: keys, the allow-list, and what refused clients see.

Runs on loopback TCP with CURVE on (the same code path as a remote box)."""

from __future__ import annotations

import socket
import stat
import time
from pathlib import Path

import pytest
import zmq

from engine.cli import main
from engine.keys import KeysFolder
from protocol.client import CurveKeys, EngineClient
from protocol.errors import AuthFailed, EngineRejected, EngineUnavailable, ErrorCode, Timeout
from tests.support.engine import EngineProcess


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> KeysFolder:
    root = tmp_path_factory.mktemp("keys")
    assert main(["keys", "--dir", str(root), "init"]) == 0
    assert main(["keys", "--dir", str(root), "add-client", "artist"]) == 0
    return KeysFolder(root)


@pytest.fixture(scope="module")
def remote(keys: KeysFolder, tmp_path_factory: pytest.TempPathFactory) -> EngineProcess:
    endpoint = f"tcp://127.0.0.1:{_free_port()}"
    proc = EngineProcess(tmp_path_factory.mktemp("remote"), "--endpoint", endpoint,
                         "--server-key", str(keys.server_secret), "--allow-dir",
                         str(keys.allow_dir), wait=False)
    proc.endpoint = endpoint
    yield proc
    proc.stop()


def _curve(keys: KeysFolder, name: str = "artist") -> CurveKeys:
    return CurveKeys.from_files(keys.server_public, keys.client_secrets / f"{name}.key_secret")


def _connect(endpoint: str, curve: CurveKeys | None, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        client = EngineClient(endpoint, curve=curve, connect_timeout=2.0)
        try:
            return client, client.connect()
        except (EngineUnavailable, Timeout):
            client.close()
            if time.monotonic() > deadline:
                raise


def test_key_files_and_modes(keys: KeysFolder) -> None:
    assert stat.S_IMODE(keys.root.stat().st_mode) == 0o700
    assert stat.S_IMODE(keys.server_secret.stat().st_mode) == 0o600
    secret = keys.client_secrets / "artist.key_secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert keys.clients() == ["artist"]
    assert main(["keys", "--dir", str(keys.root), "add-client", "artist"]) == 1  # exists
    assert main(["keys", "--dir", str(keys.root), "add-client", "../evil"]) == 1


def test_the_right_key_works(remote: EngineProcess, keys: KeysFolder) -> None:
    client, welcome = _connect(remote.endpoint, _curve(keys), timeout=60)
    try:
        assert welcome.protocol == 1
        assert client.ping() >= 0
    finally:
        client.close()


def test_an_unknown_key_is_refused_quickly(remote: EngineProcess, keys: KeysFolder,
                                           tmp_path: Path) -> None:
    _connect(remote.endpoint, _curve(keys), timeout=60)[0].close()  # the engine is up
    stranger = KeysFolder(tmp_path / "other")
    stranger.init()
    stranger.add_client("stranger")
    curve = CurveKeys.from_files(keys.server_public,
                                 stranger.client_secrets / "stranger.key_secret")
    client = EngineClient(remote.endpoint, curve=curve, connect_timeout=5.0)
    start = time.monotonic()
    with pytest.raises(AuthFailed):
        client.connect()
    assert time.monotonic() - start < 5.5
    client.close()


def test_no_key_and_plain_tcp_get_nothing(remote: EngineProcess, keys: KeysFolder) -> None:
    _connect(remote.endpoint, _curve(keys), timeout=60)[0].close()
    client = EngineClient(remote.endpoint, connect_timeout=2.0)
    with pytest.raises(AuthFailed, match="expects CURVE keys and this client has none"):
        client.connect()
    client.close()
    # a raw NULL-security DEALER sending a framed hello gets no reply
    ctx = zmq.Context.instance()
    raw = ctx.socket(zmq.DEALER)
    raw.setsockopt(zmq.LINGER, 0)
    raw.connect(remote.endpoint)
    raw.send_multipart([b"WB\x01", b"\x81\xa4type\xa5hello"])
    assert raw.poll(1500) == 0
    raw.close()


def test_a_wrong_server_key_or_none_is_said_so(remote: EngineProcess, keys: KeysFolder,
                                               tmp_path: Path) -> None:
    """Not "no engine answered … is wordbrush serve running?": the engine is there, the
    keys are wrong."""
    _connect(remote.endpoint, _curve(keys), timeout=60)[0].close()
    other = KeysFolder(tmp_path / "other-server")
    other.init()
    wrong_server = CurveKeys.from_files(other.server_public,
                                        keys.client_secrets / "artist.key_secret")
    client = EngineClient(remote.endpoint, curve=wrong_server, connect_timeout=8.0)
    with pytest.raises(AuthFailed, match=r"server key .* most likely not that engine's"):
        client.connect()
    client.close()


def test_the_allow_list_is_read_at_every_handshake(remote: EngineProcess,
                                                   keys: KeysFolder) -> None:
    """A key added while the engine runs gets in; a removed one is locked out at once."""
    _connect(remote.endpoint, _curve(keys), timeout=60)[0].close()
    assert main(["keys", "--dir", str(keys.root), "add-client", "newcomer"]) == 0
    client, _ = _connect(remote.endpoint, _curve(keys, "newcomer"))
    client.close()
    saved = (keys.client_secrets / "newcomer.key_secret").read_bytes()
    assert main(["keys", "--dir", str(keys.root), "remove-client", "newcomer"]) == 0
    secret = keys.root / "removed.key_secret"
    secret.write_bytes(saved)
    client = EngineClient(remote.endpoint, curve=CurveKeys.from_files(keys.server_public, secret),
                          connect_timeout=5.0)
    with pytest.raises(AuthFailed, match="refused this client's key") as refused:
        client.connect()
    client.close()
    assert refused.value.code is ErrorCode.AUTH_FAILED  # the user's set-up, not a crash
    # a name that is a path is refused, and the engine's own keys stay
    assert main(["keys", "--dir", str(keys.root), "remove-client", "../server"]) == 1
    assert keys.server_secret.is_file() and keys.server_public.is_file()


def test_one_client_cannot_take_or_cancel_anothers_job(remote: EngineProcess,
                                                       keys: KeysFolder) -> None:
    """On a GPU box shared by several artists, a job belongs to the key that sent it."""
    from tests.test_server import _request

    if "thief" not in keys.clients():
        assert main(["keys", "--dir", str(keys.root), "add-client", "thief"]) == 0
    owner, _ = _connect(remote.endpoint, _curve(keys), timeout=60)
    thief, _ = _connect(remote.endpoint, _curve(keys, "thief"))
    try:
        job = owner.submit(_request(params={"delay": 0.3}))
        status = thief.status()
        assert job not in str(status)
        for take in (thief.fetch, thief.cancel):
            take(job)
            with pytest.raises(EngineRejected, match=f"no job {job}"):
                thief.wait(job)
        result = owner.wait(job)
        assert result.patches
    finally:
        owner.close()
        thief.close()


def test_the_command_line_reaches_an_encrypted_engine(remote: EngineProcess, keys: KeysFolder,
                                                      capsys) -> None:
    _connect(remote.endpoint, _curve(keys), timeout=60)[0].close()
    key_args = ["--server-key", str(keys.server_public),
                "--client-key", str(keys.client_secrets / "artist.key_secret")]
    assert main(["info", "--endpoint", remote.endpoint, *key_args]) == 0
    assert f"at {remote.endpoint}" in capsys.readouterr().out
    assert main(["info", "--endpoint", remote.endpoint, *key_args[:2]]) == 1
    assert "give both --server-key" in capsys.readouterr().err
