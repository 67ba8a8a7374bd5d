"""Shared fixtures: a real engine process with the test-only method and a tiny pack."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.engine import EngineProcess


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    proc = EngineProcess(tmp_path_factory.mktemp("engine"), max_queue=3)
    yield proc
    proc.stop()
