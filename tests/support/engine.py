"""Start a real engine process for tests, with the test-only method and a tiny pack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from protocol.client import EngineClient
from protocol.errors import EngineUnavailable

REPO = Path(__file__).resolve().parents[2]


def write_test_pack(folder: Path, name: str = "test-pack", resolution: int = 32) -> Path:
    """A pack with no model files: enough for the test-only method."""
    pack = folder / name
    pack.mkdir(parents=True, exist_ok=True)
    manifest = {"format": 1, "name": name, "title": "Test pack", "domain": "anything",
                "resolution": resolution, "framing": {"kind": "pad"},
                "inversion_warning_psnr": 20.0, "examples": ["inverted"]}
    (pack / "pack.json").write_text(json.dumps(manifest))
    return folder


class EngineProcess:
    def __init__(self, tmp: Path, *extra: str, max_queue: int = 8, wait: bool = True,
                 env: dict[str, str] | None = None, ready_timeout: float = 60.0) -> None:
        self.endpoint = f"ipc://{tmp}/engine.sock"
        packs = write_test_pack(tmp / "packs")
        self.log = tmp / "engine.log"
        env = {**os.environ, "PYTHONPATH": str(REPO), "WORDBRUSH_ENDPOINT": self.endpoint,
               **(env or {})}
        cmd = [sys.executable, "-m", "engine", "serve", "--endpoint", self.endpoint,
               "--device", "cpu", "--pack-dir", str(packs), "--max-queue", str(max_queue),
               "--extra-methods", "tests.support.fake_methods", *extra]
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                         cwd=REPO)
        if wait:
            self.wait_ready(ready_timeout)

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"engine exited: {self.log.read_text()}")
            with EngineClient(self.endpoint, connect_timeout=0.5) as client:
                try:
                    client.connect()
                    return
                except EngineUnavailable:
                    continue
        raise RuntimeError(f"engine did not start: {self.log.read_text()}")

    def client(self, **kwargs: object) -> EngineClient:
        client = EngineClient(self.endpoint, **kwargs)  # type: ignore[arg-type]
        client.connect()
        return client

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
