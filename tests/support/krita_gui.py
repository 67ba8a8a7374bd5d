"""GUI Krita under Xvfb with a one-off helper plugin: for what headless kritarunner cannot
do (undo and redo are window actions; screenshots need a window).

The helper plugin waits for Krita's first window, then calls ``run(argv)`` of a module
found on ``PYTHONPATH`` (``tests/support`` is on it) and quits Krita. The module writes
what it saw to a file the caller reads.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

HELPER = textwrap.dedent('''
    import importlib, traceback
    from krita import Extension, Krita
    from PyQt5.QtCore import QTimer

    MODULE, ARGS = {module!r}, {args!r}

    class Helper(Extension):
        def setup(self):
            Krita.instance().notifier().windowCreated.connect(self.start)

        def createActions(self, window):
            pass

        def start(self):
            QTimer.singleShot(1500, self.go)

        def go(self):
            try:
                importlib.import_module(MODULE).run(ARGS, QTimer, self.quit)
            except Exception:
                traceback.print_exc()
                self.quit()

        def quit(self):
            for doc in Krita.instance().documents():
                doc.setModified(False)
            Krita.instance().action("file_quit").trigger()

    Krita.instance().addExtension(Helper(Krita.instance()))
''')


def why_no_gui_krita() -> str | None:
    """Why GUI Krita cannot run here (None: it can)."""
    for tool in ("krita", "xvfb-run"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed here; .ci/run installs krita and xvfb"
    return None


def install_plugin(home: Path) -> Path:
    """The plugin as install.py installs it, in a fresh ``home``; returns its pykrita."""
    sys.path.insert(0, str(REPO))
    import install

    target = install.KritaInstall("linux", home / ".local/share/krita/pykrita",
                                  home / ".config/kritarc", install._system_python_version(),
                                  "manylinux2014_x86_64")
    install.install_krita(target)
    return target.pykrita


def run_in_krita(home: Path, module: str, args: list[str], *, timeout: float = 300,
                 env: dict[str, str] | None = None,
                 module_dir: Path = REPO / "tests" / "support") -> tuple[str, str]:
    """GUI Krita under Xvfb in ``home`` (the plugin installed there) running
    ``module.run(args, QTimer, quit)`` (``module`` in ``module_dir``) once its window
    exists; returns its output."""
    pykrita = home / ".local/share/krita/pykrita"
    name = "wb_helper"
    (pykrita / f"{name}.desktop").write_text(
        "[Desktop Entry]\nType=Service\nServiceTypes=Krita/PythonPlugin\n"
        f"X-KDE-Library={name}\nX-Python-2-Compatible=false\nName=wordbrush test helper\n")
    (pykrita / name).mkdir(exist_ok=True)
    (pykrita / name / "__init__.py").write_text(HELPER.format(module=module, args=args))
    kritarc = home / ".config/kritarc"
    if f"enable_{name}=true" not in kritarc.read_text(encoding="utf-8"):
        with open(kritarc, "a", encoding="utf-8") as f:
            f.write(f"enable_{name}=true\n")
    # Krita's embedded Python finds its prefix through PATH: not this project's venv
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep)
                           if not (sys.prefix != sys.base_prefix and p.startswith(sys.prefix)))
    full_env = dict(os.environ, PATH=path, HOME=str(home),
                    XDG_DATA_HOME=str(home / ".local/share"),
                    XDG_CONFIG_HOME=str(home / ".config"),
                    PYTHONPATH=os.pathsep.join([str(pykrita), str(module_dir)]),
                    **(env or {}))
    # its own session, so that a timeout stops Krita and Xvfb too, not only xvfb-run
    proc = subprocess.Popen(["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", "krita",
                             "--nosplash"], env=full_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        return out, err + f"\nKrita did not finish within {timeout:.0f} s; stopped it"
