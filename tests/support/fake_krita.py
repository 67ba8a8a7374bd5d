"""A small fake of the Krita API the plugin uses (documents, nodes, selections).

Pixels are stored per node as full-canvas byte arrays in Krita's own layout (BGRA for
8/16-bit integer, RGBA for float), so the plugin's conversions are exercised for real.
"""

from __future__ import annotations

import itertools
from typing import Any

BPP = {"U8": 4, "U16": 8, "F16": 8, "F32": 16}
_ids = itertools.count(1)


def _crop(data: bytes | bytearray, width: int, bpp: int, x: int, y: int, w: int, h: int
          ) -> bytes:
    stride = width * bpp
    return b"".join(bytes(data[(y + r) * stride + x * bpp:(y + r) * stride + (x + w) * bpp])
                    for r in range(h))


class FakeNode:
    def __init__(self, doc: FakeDocument, name: str, kind: str = "paintlayer",
                 pixels: bytes | None = None) -> None:
        self.doc = doc
        self._name = name
        self._type = kind
        self._id = next(_ids)
        self.visible = True
        self.parent: FakeNode | None = None
        self.children: list[FakeNode] = []
        size = doc.width() * doc.height() * BPP[doc.depth]
        self.pixels = bytearray(pixels if pixels is not None else bytes(size))
        self.writes = 0
        self.model: str | None = None  # a layer's own colour space; None: the image's
        self.depth: str | None = None

    def name(self) -> str:
        return self._name

    def type(self) -> str:
        return self._type

    def uniqueId(self) -> int:
        return self._id

    def parentNode(self) -> FakeNode | None:
        return self.parent

    def childNodes(self) -> list[FakeNode]:
        return list(self.children)

    def setVisible(self, on: bool) -> None:
        self.visible = on

    def colorModel(self) -> str:
        return self.model or self.doc.model

    def colorDepth(self) -> str:
        return self.depth or self.doc.depth

    def pixelData(self, x: int, y: int, w: int, h: int) -> bytes:
        if self._type != "paintlayer":  # as libkis: no paint device of its own
            return b""
        return self.projectionPixelData(x, y, w, h)

    def projectionPixelData(self, x: int, y: int, w: int, h: int) -> bytes:
        bpp = BPP[self.doc.depth]
        if x < 0 or y < 0 or x + w > self.doc.width() or y + h > self.doc.height():
            raise AssertionError("the plugin read outside the canvas")
        self.doc.reads.append((self._name, x, y, w, h))
        return _crop(self.pixels, self.doc.width(), bpp, x, y, w, h)

    def setPixelData(self, data: bytes, x: int, y: int, w: int, h: int) -> bool:
        bpp = BPP[self.doc.depth]
        if len(data) != w * h * bpp:
            raise AssertionError("setPixelData got the wrong number of bytes")
        stride = self.doc.width() * bpp
        for r in range(h):
            if 0 <= y + r < self.doc.height():
                x0, x1 = max(0, x), min(self.doc.width(), x + w)
                src = (x0 - x) * bpp
                self.pixels[(y + r) * stride + x0 * bpp:(y + r) * stride + x1 * bpp] = \
                    data[r * w * bpp + src:r * w * bpp + src + (x1 - x0) * bpp]
        self.writes += 1
        return True

    def addChildNode(self, child: FakeNode, above: FakeNode | None) -> bool:
        """Children run bottom to top; without ``above`` the child goes on top (as in
        Krita 5.1, seen by tests/test_krita_undo.py)."""
        child.parent = self
        index = self.children.index(above) + 1 if above is not None else len(self.children)
        self.children.insert(index, child)
        return True

    def setName(self, name: str) -> None:
        self._name = name

    def remove(self) -> bool:
        if self.parent is None:
            return False
        self.parent.children.remove(self)
        self.parent = None
        return True


class FakeSelection:
    def __init__(self, doc: FakeDocument, mask: bytes) -> None:
        self.doc, self.mask = doc, mask
        xs = [i % doc.width() for i, v in enumerate(mask) if v]
        ys = [i // doc.width() for i, v in enumerate(mask) if v]
        self._box = (min(xs), min(ys), max(xs) + 1, max(ys) + 1) if xs else (0, 0, 0, 0)

    def x(self) -> int:
        return self._box[0]

    def y(self) -> int:
        return self._box[1]

    def width(self) -> int:
        return self._box[2] - self._box[0]

    def height(self) -> int:
        return self._box[3] - self._box[1]

    def pixelData(self, x: int, y: int, w: int, h: int) -> bytes:
        return _crop(self.mask, self.doc.width(), 1, x, y, w, h)


class FakeDocument:
    def __init__(self, width: int, height: int, depth: str = "U8", model: str = "RGBA",
                 profile: str = "sRGB-elle-V2-srgbtrc.icc") -> None:
        self._w, self._h = width, height
        self.depth, self.model, self.profile = depth, model, profile
        self.root = FakeNode(self, "root", "grouplayer")
        self.active: Any = None
        self._selection: FakeSelection | None = None
        self.reads: list[tuple] = []
        self.refreshed = 0

    def width(self) -> int:
        return self._w

    def height(self) -> int:
        return self._h

    def colorModel(self) -> str:
        return self.model

    def colorDepth(self) -> str:
        return self.depth

    def colorProfile(self) -> str:
        return self.profile

    def activeNode(self) -> Any:
        return self.active

    def selection(self) -> FakeSelection | None:
        return self._selection

    def set_selection(self, mask: bytes | None) -> None:
        self._selection = FakeSelection(self, mask) if mask is not None else None

    def add_layer(self, name: str, pixels: bytes) -> FakeNode:
        node = FakeNode(self, name, pixels=pixels)
        self.root.addChildNode(node, self.root.children[-1] if self.root.children else None)
        self.active = node
        return node

    def createNode(self, name: str, kind: str) -> FakeNode:
        return FakeNode(self, name, kind)

    def nodeByUniqueID(self, uid: int) -> FakeNode | None:
        def walk(node: FakeNode) -> Any:
            if node.uniqueId() == uid:
                return node
            for c in node.children:
                found = walk(c)
                if found is not None:
                    return found
            return None

        return walk(self.root)

    def close(self) -> None:
        """As libkis reads a closed document: no colour model, no size, no nodes made."""
        self.model, self._w, self._h = "", 0, 0
        self.createNode = lambda name, kind: None  # type: ignore[method-assign]

    def refreshProjection(self) -> None:
        self.refreshed += 1

    def layers(self) -> list[FakeNode]:
        return list(self.root.children)
