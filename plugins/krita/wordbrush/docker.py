"""The "Wordbrush" docker: Qt widgets around a :class:`Controller` (glue only)."""

from __future__ import annotations

from typing import Any

from krita import DockWidget, Krita  # type: ignore[import-not-found]
from PyQt5.QtCore import QSocketNotifier, Qt, QTimer  # type: ignore[import-not-found]
from PyQt5.QtGui import QImage, QPixmap  # type: ignore[import-not-found]
from PyQt5.QtWidgets import (  # type: ignore[import-not-found]
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from protocol.engines import NamedEngine, add_engine
from protocol.events import Welcome
from protocol.framing import Buffer

from .controller import Controller, EngineState, RunOptions
from .settings import Settings

#: the strength control's "auto" (its lowest value, shown as "auto"): send no strength
STRENGTH_AUTO = -0.1
#: the pause after the artist's last change before a live preview is asked for
PREVIEW_PAUSE_MS = 300


class WordbrushDocker(DockWidget):
    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle("Wordbrush")
        self.settings = Settings.load()
        self.controller = Controller(self, self.settings)
        # Krita quitting mid-edit: cancel the engine's job (a GPU box would run it on);
        # libkis's notifier emits nothing until it is made active
        notifier = Krita.instance().notifier()
        closing = getattr(notifier, "applicationClosing", None)
        if closing is not None:
            notifier.setActive(True)
            closing.connect(self.controller.shutdown)
        self.notifier: QSocketNotifier | None = None
        self.reference: Buffer | None = None
        self._param_widgets: dict[str, Any] = {}
        self._build()
        if self.settings.note:
            self.on_message(self.settings.note, True)
        self.timer = QTimer(self)
        self.timer.timeout.connect(self._tick)
        self.timer.start(500)
        QTimer.singleShot(0, self._connect)

    # ------------------------------------------------------------------ widgets

    def _build(self) -> None:
        root = QWidget(self)
        layout = QVBoxLayout(root)
        self.prompt = QLineEdit()
        self.prompt.setPlaceholderText('describe the selection, e.g. "a green triangle"')
        self.prompt.returnPressed.connect(self._run)
        self.prompt.textChanged.connect(self._schedule_preview)
        layout.addWidget(self.prompt)
        form = QFormLayout()
        self.method = QComboBox()
        self.method.currentIndexChanged.connect(self._method_changed)
        form.addRow("Method", self.method)
        self.strength = QDoubleSpinBox()
        # the lowest value reads "auto": the engine chooses (its automatic step), and the
        # result says which; any number is the strength used
        self.strength.setRange(STRENGTH_AUTO, 2.0)
        self.strength.setSingleStep(0.1)
        self.strength.setSpecialValueText("auto")
        self.strength.setValue(STRENGTH_AUTO if self.settings.strength is None
                               else self.settings.strength)
        self.strength.valueChanged.connect(self._schedule_preview)
        form.addRow("Strength", self.strength)
        self.variations = QSpinBox()
        self.variations.setRange(1, 8)
        self.variations.setValue(self.settings.variations)
        form.addRow("Variations", self.variations)
        self.seed = QSpinBox()
        self.seed.setRange(-1, 2**31 - 1)
        self.seed.setSpecialValueText("random")
        self.seed.setValue(-1 if self.settings.seed is None else self.settings.seed)
        form.addRow("Seed", self.seed)
        ref_row = QHBoxLayout()
        self.ref_label = QLabel("none")
        pick = QPushButton("Choose…")
        pick.clicked.connect(self._pick_reference)
        clear = QPushButton("Clear")
        clear.clicked.connect(self._clear_reference)
        ref_row.addWidget(self.ref_label, 1)
        ref_row.addWidget(pick)
        ref_row.addWidget(clear)
        form.addRow("Reference", ref_row)
        layout.addLayout(form)
        # a method's tuning parameters: folded away until the artist opens them
        self.advanced = QToolButton()
        self.advanced.setText("Advanced")
        self.advanced.setCheckable(True)
        self.advanced.setToolButtonStyle(Qt.ToolButtonTextBesideIcon)
        self.advanced.setArrowType(Qt.RightArrow)
        self.advanced.toggled.connect(self._advanced_toggled)
        layout.addWidget(self.advanced)
        self.advanced_box = QWidget()
        advanced_layout = QVBoxLayout(self.advanced_box)
        advanced_layout.setContentsMargins(12, 0, 0, 0)
        self.params_form = QFormLayout()
        advanced_layout.addLayout(self.params_form)
        reset = QPushButton("Reset to defaults")
        reset.clicked.connect(self._method_changed)  # rebuilt at the method's defaults
        advanced_layout.addWidget(reset)
        self.advanced_box.setVisible(False)
        layout.addWidget(self.advanced_box)
        buttons = QHBoxLayout()
        self.run_button = QPushButton("Run")
        self.run_button.clicked.connect(self._run)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.controller.cancel)
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        layout.addLayout(buttons)
        # the last result's variations: step through them, keep one
        self.choice_box = QWidget()
        choice_row = QHBoxLayout(self.choice_box)
        choice_row.setContentsMargins(0, 0, 0, 0)
        previous = QToolButton()
        previous.setArrowType(Qt.LeftArrow)
        previous.setToolTip("show the previous variation")
        previous.clicked.connect(lambda: self.controller.step_variation(-1))
        self.choice_label = QLabel("")
        following = QToolButton()
        following.setArrowType(Qt.RightArrow)
        following.setToolTip("show the next variation")
        following.clicked.connect(lambda: self.controller.step_variation(1))
        keep = QPushButton("Keep this one")
        keep.setToolTip("keep the variation shown and remove the others (one undo step)")
        keep.clicked.connect(lambda: self.controller.keep_variation())
        choice_row.addWidget(previous)
        choice_row.addWidget(self.choice_label, 1)
        choice_row.addWidget(following)
        choice_row.addWidget(keep)
        self.choice_box.setVisible(False)
        layout.addWidget(self.choice_box)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setFormat("%p%")
        layout.addWidget(self.progress)
        self.progress_text = QLabel("")
        self.progress_text.setWordWrap(True)
        layout.addWidget(self.progress_text)
        self.live = QCheckBox("Live preview")
        self.live.setToolTip("preview the selection as you type (a one-pass method; never "
                             "a layer: Enter or Run makes the layer)")
        self.live.setChecked(self.settings.live_preview)
        self.live.toggled.connect(self._live_toggled)
        layout.addWidget(self.live)
        self.preview = QLabel()
        self.preview.setAlignment(Qt.AlignCenter)
        self.preview.setMinimumHeight(96)
        layout.addWidget(self.preview)
        self.preview_text = QLabel("")
        self.preview_text.setWordWrap(True)
        layout.addWidget(self.preview_text)
        # the pause after the last keystroke before a live preview is asked for
        self.preview_timer = QTimer(self)
        self.preview_timer.setSingleShot(True)
        self.preview_timer.setInterval(PREVIEW_PAUSE_MS)
        self.preview_timer.timeout.connect(self._live_preview)
        self.method.currentIndexChanged.connect(self._schedule_preview)
        self.autostart = QCheckBox("Start a local engine automatically")
        self.autostart.setChecked(self.settings.autostart)
        self.autostart.toggled.connect(self._autostart_toggled)
        layout.addWidget(self.autostart)
        engine_row = QHBoxLayout()
        self.engine = QComboBox()  # the named engines: switching is one choice
        self._fill_engines()
        self.engine.activated.connect(self._engine_chosen)
        add_engine_button = QPushButton("Add…")
        add_engine_button.clicked.connect(self._edit_engine_settings)
        engine_row.addWidget(QLabel("Engine"))
        engine_row.addWidget(self.engine, 1)
        engine_row.addWidget(add_engine_button)
        layout.addLayout(engine_row)
        status_row = QHBoxLayout()
        self.status = QLabel("not connected")
        self.status.setWordWrap(True)
        retry = QPushButton("Reconnect")
        retry.clicked.connect(self._connect)
        status_row.addWidget(self.status, 1)
        status_row.addWidget(retry)
        layout.addLayout(status_row)
        layout.addStretch(1)
        self.setWidget(root)

    # ------------------------------------------------------------------ Observer

    def on_status(self, state: EngineState, text: str) -> None:
        self.status.setText(f"{state.value}: {text}" if state != EngineState.CONNECTED else text)
        self._watch_socket()

    def on_offer(self, welcome: Welcome) -> None:
        current = self.method.currentData() or self.settings.method
        self.method.blockSignals(True)
        self.method.clear()
        for m in welcome.methods:
            self.method.addItem(m.title or m.id, m.id)
        index = self.method.findData(current or welcome.default_method)
        self.method.setCurrentIndex(max(0, index))
        self.method.blockSignals(False)
        self._method_changed()

    def on_busy(self, busy: bool) -> None:
        self.run_button.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)
        if not busy:
            self.progress.setValue(0)
            self.preview.clear()  # the edit's own (the model's view) ends with it

    def on_progress(self, fraction: float, text: str) -> None:
        self.progress.setValue(int(1000 * fraction))
        self.progress_text.setText(text)

    def on_preview(self, width: int, height: int, rgba8: bytes) -> None:
        image = QImage(rgba8, width, height, 4 * width, QImage.Format_RGBA8888).copy()
        self.preview.setPixmap(QPixmap.fromImage(image).scaled(
            128, 128, Qt.KeepAspectRatio, Qt.SmoothTransformation))

    def on_message(self, text: str, error: bool) -> None:
        self.progress_text.setText(("⚠ " if error else "") + text)

    def on_live_preview(self, width: int, height: int, rgba8: bytes, text: str) -> None:
        if self.controller.job is not None:  # an edit's own previews own the picture now
            return
        self.on_preview(width, height, rgba8)
        self.preview_text.setText(text)

    def on_variations(self, shown: int | None, count: int) -> None:
        self.choice_box.setVisible(shown is not None)
        if shown is not None:
            self.choice_label.setText(f"variation {shown + 1} of {count}")

    # ------------------------------------------------------------------ live preview

    def _schedule_preview(self, *_: Any) -> None:
        """Every keystroke restarts the pause; the preview is asked for when it ends."""
        if self.live.isChecked():
            self.preview_timer.start()

    def _live_preview(self) -> None:
        if not self.prompt.text().strip() and self.reference is None:
            self.controller.cancel_preview()
            self.preview.clear()
            self.preview_text.setText("")
            return
        why = self.controller.preview(Krita.instance().activeDocument(), self._options())
        if why is not None and why != "an edit is running":
            self.preview_text.setText(f"no preview: {why}")
        self._watch_socket()

    def _live_toggled(self, on: bool) -> None:
        self.settings.live_preview = on
        self._save()
        if on:
            self._schedule_preview()
        else:
            self.preview_timer.stop()
            self.controller.cancel_preview()
            self.preview_text.setText("")

    # ------------------------------------------------------------------ actions

    def _watch_socket(self) -> None:
        fd = self.controller.fileno()
        if self.notifier is not None and (fd is None or self.notifier.socket() != fd):
            self.notifier.setEnabled(False)
            self.notifier = None
        if fd is not None and self.notifier is None:
            self.notifier = QSocketNotifier(fd, QSocketNotifier.Read, self)
            self.notifier.activated.connect(self._readable)

    def _readable(self, *_: Any) -> None:
        # edge-triggered: disable, drain everything, re-enable
        if self.notifier is not None:
            self.notifier.setEnabled(False)
        self.controller.pump()
        if self.notifier is not None:
            self.notifier.setEnabled(True)

    def _tick(self) -> None:
        self.controller.tick()
        self._watch_socket()

    def _connect(self) -> None:
        self.controller.connect()
        self._watch_socket()

    def _fill_engines(self) -> None:
        self.engine.clear()
        current = self.settings.current().name
        for engine in self.settings.known_engines():
            self.engine.addItem(engine.name if engine.is_local
                                else f"{engine.name} ({engine.endpoint})", engine.name)
            if engine.name == current:
                self.engine.setCurrentIndex(self.engine.count() - 1)

    def _engine_chosen(self) -> None:
        self.settings.choose(self.engine.currentData())
        self._save()
        self._connect()

    def _edit_engine_settings(self) -> None:
        """A named remote engine: its name, endpoint and CURVE key files."""
        dialog = QDialog(self)
        dialog.setWindowTitle("Add an engine")
        form = QFormLayout(dialog)
        name_edit = QLineEdit()
        name_edit.setPlaceholderText("e.g. studio")
        form.addRow("Name", name_edit)
        endpoint = QLineEdit()
        endpoint.setPlaceholderText("tcp://HOST:47615")
        form.addRow("Endpoint", endpoint)
        keys = {}
        for name, label, pattern in (("server_key", "Server public key", "*.key"),
                                     ("client_key", "Client secret key", "*.key_secret")):
            row = QHBoxLayout()
            edit = QLineEdit()
            browse = QPushButton("…")
            browse.clicked.connect(lambda _=False, e=edit, p=pattern: e.setText(
                QFileDialog.getOpenFileName(self, "Key file", "", f"Keys ({p})")[0] or e.text()))
            row.addWidget(edit, 1)
            row.addWidget(browse)
            form.addRow(label, row)
            keys[name] = edit
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.accepted.connect(dialog.accept)
        buttons.rejected.connect(dialog.reject)
        form.addRow(buttons)
        if dialog.exec_() != QDialog.Accepted:
            return
        try:
            added = add_engine(self.settings.as_dict(), NamedEngine(
                name_edit.text().strip(), endpoint.text().strip(),
                keys["server_key"].text().strip(), keys["client_key"].text().strip()))
        except ValueError as exc:
            self.progress_text.setText(str(exc))
            return
        self.settings.engines = added["engines"]
        self.settings.choose(added["engine"])
        self._save()
        self._fill_engines()
        self._connect()

    def _advanced_toggled(self, open_: bool) -> None:
        self.advanced.setArrowType(Qt.DownArrow if open_ else Qt.RightArrow)
        self.advanced_box.setVisible(open_)

    def _autostart_toggled(self, on: bool) -> None:
        self.settings.autostart = on
        self._save()

    def _method_changed(self) -> None:
        while self.params_form.rowCount():
            self.params_form.removeRow(0)
        self._param_widgets.clear()
        welcome = self.controller.welcome
        method_id = self.method.currentData()
        info = welcome.method(method_id) if welcome else None
        # an unseeded method gives one result whatever the seed: no variations to ask for
        self.variations.setEnabled(info is None or info.seeded)
        self.variations.setToolTip("" if info is None or info.seeded else
                                   f"{info.title} gives one result for a prompt")
        if info is None:
            return
        for spec in info.params:
            if spec.kind == "bool":
                check = QCheckBox()
                check.setChecked(bool(spec.default))
                check.setToolTip(spec.help)
                self.params_form.addRow(spec.name, check)
                self._param_widgets[spec.name] = (check, bool(spec.default))
                continue
            if spec.kind == "choice":
                combo = QComboBox()
                for choice in spec.choices:
                    combo.addItem(choice)
                combo.setCurrentText(str(spec.default))
                combo.setToolTip(spec.help)
                self.params_form.addRow(spec.name, combo)
                self._param_widgets[spec.name] = (combo, spec.default)
                continue
            if spec.name == "strength" or spec.kind not in ("int", "float"):
                continue
            box = QDoubleSpinBox() if spec.kind == "float" else QSpinBox()
            if spec.kind == "float":
                box.setDecimals(3)
            if spec.minimum is not None:
                box.setMinimum(spec.minimum)
            if spec.maximum is not None:
                box.setMaximum(spec.maximum)
            box.setValue(spec.default)
            box.setToolTip(spec.help)
            self.params_form.addRow(spec.name, box)
            self._param_widgets[spec.name] = (box, spec.default)

    def _pick_reference(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Reference image", "",
                                              "Images (*.png *.jpg *.jpeg *.webp *.bmp)")
        if not path:
            return
        image = QImage(path)
        if image.isNull():
            self.on_message(f"cannot read {path}", True)
            return
        image = image.convertToFormat(QImage.Format_RGBA8888)
        ptr = image.constBits()
        ptr.setsize(image.byteCount())
        data = bytes(ptr)
        stride = image.bytesPerLine()
        w, h = image.width(), image.height()
        rows = b"".join(data[y * stride:y * stride + 4 * w] for y in range(h))
        self.reference = Buffer("reference", w, h, "rgba8", rows)
        self.ref_label.setText(path.rsplit("/", 1)[-1])
        self._schedule_preview()

    def _clear_reference(self) -> None:
        self.reference = None
        self.ref_label.setText("none")
        self._schedule_preview()

    def _options(self) -> RunOptions:
        params: dict[str, Any] = {}
        welcome = self.controller.welcome
        info = welcome.method(self.method.currentData()) if welcome else None
        if info is not None and info.param("strength") is not None \
                and self.strength.value() > STRENGTH_AUTO:
            params["strength"] = self.strength.value()
        for name, (box, default) in self._param_widgets.items():
            if isinstance(box, QCheckBox):
                value = box.isChecked()
            elif isinstance(box, QComboBox):
                value = box.currentText()
            else:
                value = box.value()
            if value != default:
                params[name] = value
        seed = self.seed.value()
        return RunOptions(prompt=self.prompt.text(), method=self.method.currentData(),
                          params=params, variations=self.variations.value(),
                          seed=None if seed < 0 else seed, reference=self.reference)

    def _run(self) -> None:
        options = self._options()
        self.settings.method = options.method or ""
        self.settings.strength = None if self.strength.value() <= STRENGTH_AUTO \
            else self.strength.value()
        self.settings.variations = options.variations
        self._save()
        self.preview_timer.stop()
        self.preview.clear()
        self.preview_text.setText("")
        self.controller.run(Krita.instance().activeDocument(), options)
        self._watch_socket()

    def _save(self) -> None:
        try:
            self.settings.save()
        except OSError as exc:
            self.on_message(f"could not save settings: {exc}", True)

    def canvasChanged(self, canvas: Any) -> None:
        pass
