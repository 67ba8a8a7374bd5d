"""Inside GUI Krita (scripts/krita_docker_screenshot.py): open the scene, select one
shape, type a prompt in the docker, wait for the live preview, grab the docker, press Run,
wait for the new layer, grab the window.

``run([docker_png, window_png, scene, x, y, w, h], QTimer, quit)``.
"""

from __future__ import annotations

from krita import Krita, Selection  # type: ignore[import-not-found]


def _docker():
    for d in Krita.instance().dockers():
        if d.objectName() == "wordbrush":
            return d
    return None


def run(args: list[str], QTimer, quit) -> None:
    docker_png, window_png, scene = args[:3]
    box = [int(v) for v in args[3:7]]
    app = Krita.instance()
    doc = app.openDocument(scene)
    app.activeWindow().addView(doc)
    selection = Selection()
    selection.select(*box, 255)
    doc.setSelection(selection)
    waited = [0]

    def prompt() -> None:
        d = _docker()
        if d is not None:
            d.show()
            d.raise_()
            d.prompt.setText("a blue star")  # the live preview follows the pause
        QTimer.singleShot(6000, grab_docker)

    def grab_docker() -> None:
        d = _docker()
        if d is not None:
            d.grab().save(docker_png)
            d._run()  # the layer, as Enter makes it
        QTimer.singleShot(1000, wait_for_layer)

    def wait_for_layer() -> None:
        d = _docker()
        waited[0] += 1
        if d is not None and d.controller.job is not None and waited[0] < 120:
            QTimer.singleShot(1000, wait_for_layer)
            return
        QTimer.singleShot(1000, grab_window)

    def grab_window() -> None:
        window = app.activeWindow()
        if window is not None:
            window.qwindow().grab().save(window_png)
        quit()

    QTimer.singleShot(4000, prompt)
