"""The docker shown when the plugin's dependencies are missing: it says what to run."""

from __future__ import annotations

from krita import DockWidget  # type: ignore[import-not-found]
from PyQt5.QtWidgets import QLabel  # type: ignore[import-not-found]


class MissingDocker(DockWidget):
    def __init__(self) -> None:
        super().__init__()
        from . import MISSING

        self.setWindowTitle("Wordbrush")
        label = QLabel(MISSING or "")
        label.setWordWrap(True)
        self.setWidget(label)

    def canvasChanged(self, canvas: object) -> None:
        pass
