"""The import rules: protocol/ is pure Python, and imports point one way."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_protocol_imports_no_numpy_or_torch() -> None:
    code = ("import sys; import protocol.client, protocol.regions, protocol.events, "
            "protocol.endpoints; bad = [m for m in ('numpy', 'torch', 'engine') "
            "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_import_directions() -> None:
    rules = {
        "protocol": {"engine", "plugins", "torch", "numpy"},
        "engine/models": {"protocol", "plugins"},
        "engine/methods": {"protocol", "plugins"},
        "plugins": {"engine"},
    }
    bad = []
    for folder, forbidden in rules.items():
        for path in (REPO / folder).rglob("*.py"):
            hits = _imports(path) & forbidden
            if hits:
                bad.append(f"{path.relative_to(REPO)} imports {sorted(hits)}")
    assert not bad, bad


def test_protocol_parses_on_python_3_10() -> None:
    for path in (REPO / "protocol").rglob("*.py"):
        ast.parse(path.read_text(), feature_version=(3, 10))
