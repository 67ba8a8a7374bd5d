"""A face photo, a selection around its face, and a face pack, for the face tests (the
engine's and the real editors')."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from tests.support.packs import make_pack

#: the selection around the astronaut's face (x0, y0, x1, y1)
FACE_BOX = (160, 60, 280, 190)


def face_photo(folder: Path) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    """scikit-image's portrait (``astronaut()``) and a selection around its face, written
    as ``photo.png`` and ``photo-mask.png``; returns the paths, the RGB and the mask."""
    from skimage import data

    photo = data.astronaut()
    x0, y0, x1, y1 = FACE_BOX
    mask = np.zeros(photo.shape[:2], np.uint8)
    mask[y0:y1, x0:x1] = 255
    mask[y0:y1, x0] = 128  # a soft edge
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(photo).save(folder / "photo.png")
    Image.fromarray(mask).save(folder / "photo-mask.png")
    return folder / "photo.png", folder / "photo-mask.png", photo, mask


def make_face_pack(folder: Path, name: str = "faces") -> Path:
    """A small pack in the FFHQ layout families (rosinality generator, e4e encoder,
    open_clip, CLIPInverter's released layout) with random weights and the ffhq framing;
    ``folder`` is the packs folder, the pack goes in ``folder / name``."""
    return make_pack(folder / name, name=name, vocabulary={}, clipinverter=True,
                     framing={"kind": "ffhq"})
