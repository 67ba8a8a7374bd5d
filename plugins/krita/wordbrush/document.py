"""The Krita document, seen through the few calls wordbrush needs (and nothing else).

:class:`KritaDocument` wraps a ``krita.Document``: it reads the active layer's pixels inside
the padded selection bounds (never the whole canvas when there is a selection), the
selection mask over the same box, and inserts results as *new* layers above the source.
Existing layers are never written to. Tests drive it with a fake ``krita`` API.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from protocol.framing import Buffer, Limits, area_too_large
from protocol.regions import Box, Framing, context_box, mask_bbox

from .pixels import Layout, UnsupportedImage, from_wire, layout_for, to_wire, transfer_for

__all__ = ["LAYER_PREFIX", "Inserted", "KritaDocument", "NoActiveLayer", "Region"]

LAYER_PREFIX = "[wordbrush] "


class NoActiveLayer(ValueError):
    pass


@dataclass
class Region:
    """What goes to the engine: pixels and selection over one box of the document."""

    layer: Buffer
    mask: Buffer | None
    offset: tuple[int, int]
    selection_box: Box | None
    note: str  # for the status line ("whole layer: no selection", ...)
    layout: Layout
    source: Any  # the source node, to insert the results above it
    canvas: tuple[int, int] = (0, 0)  # the document's size when it was read


@dataclass
class Inserted:
    """What a result added: its layers' names and, for variations, their group."""

    names: list[str]
    group: Any = None


#: why a result is not added to a document closed while the engine worked
CLOSED = "the document was closed during the edit; nothing was added"


def _paintable(node: Any) -> bool:
    return node is not None and node.type() in ("paintlayer", "grouplayer", "filelayer",
                                                "vectorlayer", "clonelayer", "filllayer")


class KritaDocument:
    def __init__(self, doc: Any) -> None:
        self.doc = doc

    # ------------------------------------------------------------------ reading

    def layout(self) -> Layout:
        return layout_for(self.doc.colorModel(), self.doc.colorDepth())

    def region(self, framing: Framing | dict | None, node: Any = None,
               limits: Limits | None = None) -> Region:
        """The active layer (or ``node``) within the model square around the selection
        (clipped to the canvas), and the selection over the same box. No selection: the
        whole layer."""
        layout = self.layout()  # raises UnsupportedImage with what to do
        node = node if node is not None else self.doc.activeNode()
        if not _paintable(node):
            raise NoActiveLayer("select a layer to edit (the active node is a mask or "
                                "a filter layer, or nothing)")
        own = (node.colorModel(), node.colorDepth())
        if own != (self.doc.colorModel(), self.doc.colorDepth()):
            raise UnsupportedImage(
                f"this layer is {own[0]}/{own[1]} but the image is {self.doc.colorModel()}/"
                f"{self.doc.colorDepth()}: convert the layer with Layer › Convert › Convert "
                "Layer Color Space… first")
        width, height = self.doc.width(), self.doc.height()
        transfer = transfer_for(self.doc.colorProfile())
        selection = self.doc.selection()
        mask_buf = None
        sel_box: Box | None = None
        if selection is not None and selection.width() > 0 and selection.height() > 0:
            sx, sy, sw, sh = selection.x(), selection.y(), selection.width(), selection.height()
            sel_bytes = bytes(selection.pixelData(sx, sy, sw, sh))
            inner = mask_bbox(sel_bytes, sw, sh)
            if inner is None:
                raise ValueError("the selection is empty (fully transparent): select a region")
            sel_box = Box(sx + inner.x, sy + inner.y, inner.w, inner.h).clip(width, height)
            if sel_box.empty:
                raise ValueError("the selection lies outside the canvas")
            box = context_box(sel_box, width, height, Framing.from_dict(framing))
            mask_buf = Buffer("mask", box.w, box.h, "a8",
                              bytes(selection.pixelData(box.x, box.y, box.w, box.h)))
            note = f"selection {sel_box.w}×{sel_box.h} at {sel_box.x},{sel_box.y}"
        else:
            box = Box(0, 0, width, height)
            note = "no selection: editing the whole layer"
        if limits is not None and (why := area_too_large(box.w, box.h, layout.wire_format,
                                                          limits)):
            raise ValueError(why)
        # a group, vector, file, clone or fill layer has no pixels of its own to read
        # (libkis gives nothing, or a fill's selection): what it shows is its projection
        read = node.pixelData if node.type() == "paintlayer" else node.projectionPixelData
        raw = bytes(read(box.x, box.y, box.w, box.h))
        pixels = to_wire(raw, box.w, box.h, layout)
        layer = Buffer("layer", box.w, box.h, layout.wire_format, pixels, transfer)
        return Region(layer, mask_buf, (box.x, box.y), sel_box, note, layout, node,
                      (width, height))

    def closed(self) -> bool:
        """Whether the document was closed: libkis then reads no colour model and no size."""
        return not self.doc.colorModel() or self.doc.width() == 0

    # ------------------------------------------------------------------ writing

    def insert_results(self, source: Any, patches: list[Buffer], offset: tuple[int, int],
                       prompt: str, layout: Layout, canvas: tuple[int, int] | None = None
                       ) -> Inserted:
        """New paint layers directly above the source layer (a group for several
        variations, the first visible), in one undo step.

        The source is the Node object itself: Krita 5.1's ``nodeByUniqueID`` returns a bare
        QObject that ``addChildNode`` refuses (found by the real-Krita test). A document
        whose colour space or size changed while the engine worked (``canvas``: its size
        then) gets nothing: the pixels would land in the wrong format or place."""
        if self.closed():
            raise ValueError(CLOSED)
        parent = source.parentNode() if source is not None else None
        if parent is None:
            raise ValueError("the layer that was edited no longer exists; nothing was added")
        if self.layout() != layout:
            raise ValueError("the image's colour space changed during the edit; nothing was "
                             "added")
        if canvas is not None and canvas != (self.doc.width(), self.doc.height()):
            raise ValueError("the canvas was resized during the edit; nothing was added")
        name = LAYER_PREFIX + (prompt.strip() or "edit")
        x, y = offset
        nodes = []
        group = None
        for i, patch in enumerate(patches):
            node = self.doc.createNode(name if len(patches) == 1 else f"{name} #{i + 1}",
                                       "paintlayer")
            if node is None:
                raise ValueError(CLOSED)
            written = node.setPixelData(from_wire(patch.data, patch.width, patch.height,
                                                  layout), x, y, patch.width, patch.height)
            if written is False:
                raise ValueError("Krita refused the result's pixels; nothing was added")
            node.setVisible(i == 0)
            nodes.append(node)
        if len(nodes) == 1:
            _add(parent, nodes[0], source)
        else:
            group = self.doc.createNode(name, "grouplayer")
            if group is None:
                raise ValueError(CLOSED)
            # filled before it joins the image: one undo step for the whole result (each
            # layer added to a group in the image would be a step of its own)
            for node in reversed(nodes):  # first variation on top
                _add(group, node, None)
            _add(parent, group, source)
        self.doc.refreshProjection()
        return Inserted([n.name() for n in nodes], group)

    # ------------------------------------------------------------------ variations

    @staticmethod
    def variations(group: Any) -> list[Any]:
        """The variations in a result's group, first (top) first."""
        return list(reversed(group.childNodes()))

    def show_variation(self, group: Any, index: int) -> None:
        """Show variation ``index`` of the group alone (visibility: no undo step)."""
        self._check_group(group)
        for i, node in enumerate(self.variations(group)):
            node.setVisible(i == index)
        self.doc.refreshProjection()

    def keep_variation(self, group: Any, index: int,
                       flatten: Callable[[Any, Any], Any] | None = None) -> str:
        """Keep variation ``index`` and drop the others in one undo step: the group,
        showing it alone, is flattened into one paint layer (Krita's Flatten Layer, which
        is one command; removing layers one by one would be one step each). Returns the
        kept layer's name."""
        self._check_group(group)
        name = self.variations(group)[index].name()
        self.show_variation(group, index)
        kept = (flatten or _flatten_in_krita)(self.doc, group)
        if kept is None:
            raise ValueError("Krita did not flatten the variations; nothing was changed")
        kept.setName(name)
        return name

    def _check_group(self, group: Any) -> None:
        if self.closed() or group is None or group.parentNode() is None:
            raise ValueError("the variations' group is gone (deleted, or its document "
                             "closed); nothing was changed")


def _flatten_in_krita(doc: Any, node: Any) -> Any:
    """Krita's Flatten Layer on ``node``: its visible content as one paint layer in its
    place, one undo step. Returns the new layer."""
    import time

    from krita import Krita  # type: ignore[import-not-found]  # only inside Krita
    from PyQt5.QtWidgets import QApplication  # type: ignore[import-not-found]

    def settle(done: Callable[[], bool]) -> bool:
        # the active node and the action reach the image through Qt's event loop
        deadline = time.monotonic() + 5.0
        while not done() and time.monotonic() < deadline:
            QApplication.processEvents()
            doc.waitForDone()
        return done()

    parent = node.parentNode()
    index = next(i for i, n in enumerate(parent.childNodes()) if _same(n, node))

    def active() -> bool:
        # queued work (a layer just added becoming active) may take it back: ask again.
        # Krita applies setActiveNode only through the current view of this document,
        # so that view is made current first.
        if _same(doc.activeNode(), node):
            return True
        _show_document(doc)
        doc.setActiveNode(node)
        return False

    doc.waitForDone()  # a busy image (a projection being refreshed) ignores the action
    if not settle(active):
        raise ValueError("Krita did not make the variations' group the active layer; "
                         "nothing was changed")
    Krita.instance().action("flatten_layer").trigger()
    if not settle(lambda: node.parentNode() is None):
        raise ValueError("Krita's Flatten Layer did not run on the variations' group; "
                         "nothing was changed")
    return parent.childNodes()[index]  # the flattened layer takes the group's place


def _show_document(doc: Any) -> None:
    """Make the view that shows ``doc`` the one Krita acts on: the window's active view
    and its view manager's current one (``View.setVisible``), which ``setActiveNode``
    goes through; the two can disagree in a window no window manager has focused."""
    from krita import Krita  # type: ignore[import-not-found]  # only inside Krita

    for window in Krita.instance().windows():
        for view in window.views():
            if view.document() == doc:
                view.setVisible()
                window.activate()
                return


def _same(a: Any, b: Any) -> bool:
    return a is not None and b is not None and a.uniqueId() == b.uniqueId()


def _add(parent: Any, child: Any, above: Any) -> None:
    if parent.addChildNode(child, above) is False:
        raise ValueError("Krita refused the new layer; nothing was added")
