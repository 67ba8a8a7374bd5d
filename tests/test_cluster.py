"""The engine in front of a Ray Serve deployment (``wordbrush serve --cluster``), against
a local Ray cluster these tests start and stop: the same patches as in-process, many
clients at once, a replica killed mid-job, cancel across the hop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from engine.bench_cluster import local_cluster
from engine.packs import REPO_PACKS, PackRegistry
from engine.runner import EditRunner
from protocol.errors import EngineRejected, ErrorCode, JobCancelled
from protocol.events import Progress
from protocol.framing import Buffer
from protocol.messages import EditRequest, request_for_selection
from tests.support.engine import REPO, EngineProcess

pytestmark = pytest.mark.slow

if subprocess.run([sys.executable, "-c", "import ray.serve"], capture_output=True).returncode:
    print("SKIP: Ray Serve is not installed here (python3 install.py --dev installs it)")
    pytest.skip("Ray Serve is not installed (python3 install.py --dev installs it)",
                allow_module_level=True)

RAY = str(Path(sys.executable).with_name("ray"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[str, dict[str, str]]]:
    """A one-node Ray cluster with two CPUs, the repository on its workers' path (the
    test method lives in tests/)."""
    with local_cluster(extra_env={"PYTHONPATH": str(REPO)}) as started:
        yield started


@pytest.fixture(scope="module")
def front(cluster: tuple[str, dict[str, str]], tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[EngineProcess]:
    address, env = cluster
    eng = EngineProcess(tmp_path_factory.mktemp("front"), "--cluster", address,
                        "--min-replicas", "2", "--max-replicas", "2", max_queue=32, env=env,
                        ready_timeout=240)
    try:
        yield eng
    finally:
        eng.stop()


def _scene_request(method: str, params: dict, seed: int = 1) -> EditRequest:
    from engine.world import render_scene, selection_for

    scene = render_scene(5, 160, 120, n_objects=2)
    _, sel = selection_for(scene, 0, "tight")
    rgba = np.concatenate([scene.image, np.full((120, 160, 1), 255, np.uint8)], axis=2)
    return request_for_selection(Buffer("layer", 160, 120, "rgba8", rgba.tobytes()),
                                 sel.tobytes(), {"kind": "box", "factor": 0.75},
                                 prompt="a blue star", method=method, pack="demo",
                                 params=params, seed=seed)


def _test_request(seed: int, params: dict) -> EditRequest:
    rng = np.random.default_rng(seed)
    layer = rng.integers(0, 255, (30, 40, 4), dtype=np.uint8)
    layer[..., 3] = 255
    sel = np.zeros((30, 40), np.uint8)
    sel[5:20, 8:30] = 255
    return EditRequest(layer=Buffer("layer", 40, 30, "rgba8", layer.tobytes()),
                       mask=Buffer("mask", 40, 30, "a8", sel.tobytes()), prompt="inverted",
                       method="test-invert", pack="test-pack", params=params, seed=seed)


@pytest.mark.parametrize("method,params", [("clipinverter", {}),
                                           ("paint-by-word", {"steps": 3})])
def test_the_same_patch_as_in_process(front: EngineProcess, method: str,
                                      params: dict) -> None:
    """Byte for byte, with the same seed and the same CPU threads (a replica of one CPU
    runs torch on one thread; float sums in another order would differ in the last bit)."""
    import torch

    request = _scene_request(method, params)
    with front.client(progress_timeout=240) as client:
        remote = client.edit(request)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        local = EditRunner(PackRegistry([REPO_PACKS]), "cpu").run_local(request)
    finally:
        torch.set_num_threads(threads)
    assert remote.offset == local.offset
    assert [bytes(p.data) for p in remote.patches] == [bytes(p.data) for p in local.patches]


def test_four_clients_eight_edits_two_replicas(front: EngineProcess) -> None:
    results: dict[int, list] = {}

    def artist(k: int) -> None:
        with front.client(progress_timeout=120) as client:
            jobs = [client.submit(_test_request(k * 10 + j, {"steps": 4, "delay": 0.1}))
                    for j in range(2)]
            results[k] = [(job, client.wait(job)) for job in jobs]

    threads = [threading.Thread(target=artist, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert sorted(results) == [0, 1, 2, 3]
    for k, done in results.items():
        assert [result.job for _, result in done] == [job for job, _ in done]
        assert [result.info["seeds"] for _, result in done] == [[k * 10], [k * 10 + 1]]
    with front.client() as client:
        seen = client.status()["cluster"]["replicas_seen"]
    assert len(seen) == 2  # both replicas ran edits


def test_cancel_crosses_the_hop(front: EngineProcess) -> None:
    with front.client(progress_timeout=120) as client:
        job = client.submit(_test_request(1, {"steps": 200, "delay": 0.05}))
        steps: list[int] = []
        deadline = time.monotonic() + 120
        while len(steps) < 3:
            steps += [e.step for e in client.poll(0.1)
                      if isinstance(e, Progress) and not e.heartbeat and e.job == job]
            assert time.monotonic() < deadline
        asked = time.monotonic()
        client.cancel(job)
        with pytest.raises(JobCancelled):
            client.wait(job)
        assert time.monotonic() - asked < 5.0
        # the replica is free again
        assert client.edit(_test_request(2, {"steps": 1})).patches


def test_a_replica_killed_mid_job_costs_one_retry(front: EngineProcess) -> None:
    """Its process killed in the middle of a paint-by-word edit: the job starts again on
    another replica and completes (or fails saying a worker died); the engine answers the
    next request."""
    request = _scene_request("paint-by-word", {"steps": 40})
    with front.client(progress_timeout=240) as client:
        job = client.submit(request)
        deadline = time.monotonic() + 120
        busy: list[str] = []
        while not busy:
            seen = client.status()["cluster"]["replicas_seen"]
            busy = [where for where, s in seen.items() if s["jobs"] > 0]
            assert time.monotonic() < deadline
            time.sleep(0.2)
        os.kill(int(busy[0].rsplit(":", 1)[1]), signal.SIGKILL)
        try:
            result = client.wait(job)
            assert result.patches
        except EngineRejected as exc:
            assert exc.code is ErrorCode.METHOD_FAILED and "a worker died" in str(exc)
        assert client.edit(_test_request(3, {"steps": 1})).patches
    assert f"job.retry job={job}" in front.log.read_text()


def test_an_unreachable_cluster_is_one_line(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "engine", "serve", "--endpoint",
                           f"ipc://{tmp_path}/engine.sock", "--cluster",
                           f"127.0.0.1:{_free_port()}", "--device", "cpu"],
                          capture_output=True, text=True, timeout=120, cwd=REPO,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    lines = [line for line in proc.stderr.splitlines() if line.startswith("wordbrush:")]
    assert proc.returncode != 0 and len(lines) == 1, proc.stderr
    assert "cannot reach the Ray cluster" in lines[0]


def test_a_lost_cluster_fails_new_jobs_clearly(tmp_path: Path) -> None:
    """The cluster stopped under a running front: the next edit fails with a sentence
    after the front's --cluster-timeout, instead of hanging; the front still answers."""
    with local_cluster(extra_env={"PYTHONPATH": str(REPO)}) as (address, env):
        eng = EngineProcess(tmp_path, "--cluster", address, "--min-replicas", "1",
                            "--max-replicas", "1", "--cluster-timeout", "10", env=env,
                            ready_timeout=240)
        try:
            with eng.client(progress_timeout=120) as client:
                assert client.edit(_test_request(1, {"steps": 1})).patches
                subprocess.run([RAY, "stop", "--force"], env={**os.environ, **env},
                               capture_output=True, timeout=120)
                started = time.monotonic()
                with pytest.raises(EngineRejected, match="has not answered for 10 s"):
                    client.edit(_test_request(2, {"steps": 1}))
                assert time.monotonic() - started < 60
                assert client.ping() < 5
        finally:
            eng.stop()


def test_without_cluster_nothing_of_ray_is_imported() -> None:
    probe = ("import sys, engine.cli, engine.server, engine.runner, engine.packs, "
             "protocol.client; print(any(m == 'ray' or m.startswith('ray.') for m in "
             "sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.stdout.strip() == "False", out.stderr
