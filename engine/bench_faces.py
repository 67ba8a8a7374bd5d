"""``wordbrush bench faces``: finding and aligning a face in a large photo.

The photo (``--image``, or scikit-image's portrait ``astronaut()`` enlarged to ``--side``,
2048 by default) with a selection around its face goes through what an edit does: the
context an editor sends for the ``ffhq`` framing, then dlib's detector on a copy at most
:data:`engine.faces.DETECT_SIDE` px on a side, the 68 landmarks on the full pixels, and
the alignment to the frame (256 px, e4e's input, and 1024 px, an FFHQ generator's). The
detector on the full-size copy is timed in the same run: the ratio is what the smaller
copy saves. Each figure is the median of ``--repeats`` after a warm-up.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np


def _median(fn: Callable[[], Any], repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def sample_photo(args: argparse.Namespace) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The photo (H x W x 3 uint8) and a box around its face (x0, y0, x1, y1)."""
    from PIL import Image

    if args.image:
        image = np.asarray(Image.open(args.image).convert("RGB"))
        return image, (0, 0, image.shape[1], image.shape[0])
    try:
        from skimage import data
    except ImportError:
        raise SystemExit("bench faces: pass --image PHOTO, or install scikit-image for its "
                         "sample portrait (pip install scikit-image)") from None
    side = args.side or 2048
    scale = side / 512
    image = np.asarray(Image.fromarray(data.astronaut()).resize((side, side), Image.BICUBIC))
    return image, tuple(round(v * scale) for v in (160, 60, 280, 190))


def bench_faces(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from engine.faces import DETECT_SIDE, face_models
    from engine.runner import frame_request
    from protocol.framing import Buffer
    from protocol.messages import request_for_selection
    from protocol.regions import Framing

    image, (x0, y0, x1, y1) = sample_photo(args)
    h, w = image.shape[:2]
    rgba = np.concatenate([image, np.full((h, w, 1), 255, np.uint8)], axis=-1)
    mask = np.zeros((h, w), np.uint8)
    mask[y0:y1, x0:x1] = 255
    framing = Framing("ffhq")
    load_start = time.perf_counter()
    models = face_models()
    load_s = time.perf_counter() - load_start

    def request() -> Any:
        return request_for_selection(Buffer("layer", w, h, "rgba8", rgba.tobytes()),
                                     mask.tobytes(), framing.to_dict(), prompt="bench")

    sent = request()
    crop = np.frombuffer(sent.layer.data, np.uint8).reshape(sent.layer.height,
                                                           sent.layer.width, 4)[..., :3]
    rows: list[tuple[str, float]] = []
    steps = [
        ("the context an editor sends (crop)", request, None),
        ("detect + landmarks on the context", lambda: models.find(np.ascontiguousarray(crop)),
         None),
        ("detect + landmarks, full-size detector", lambda: models.find(
            np.ascontiguousarray(crop), detect_side=max(crop.shape)), None),
        ("the whole pipeline, 256 px frame", lambda: frame_request(sent, framing, 256), 256),
        ("the whole pipeline, 1024 px frame", lambda: frame_request(sent, framing, 1024), 1024),
    ]
    for label, fn, _ in tqdm(steps, desc="bench faces", unit="step"):
        rows.append((label, _median(fn, args.repeats)))
    faces = frame_request(sent, framing, 256)[1]
    print(f"a {w}x{h} photo, the selection {x1 - x0}x{y1 - y0}; the editor sends a "
          f"{sent.layer.width}x{sent.layer.height} context; {len(faces)} face(s), "
          f"{faces[0].face.eye_distance:.0f} px between the eyes; median of {args.repeats}")
    print(f"  loading dlib's models (once per engine): {load_s:.2f} s")
    for label, seconds in rows:
        print(f"  {label}: {seconds * 1000:.0f} ms")
    detect, full = rows[1][1], rows[2][1]
    print(f"  detector on a copy of at most {DETECT_SIDE} px against the full-size "
          f"{max(crop.shape[:2])} px: {detect / full:.2f}x the time")
    print(f"  goal: detection + alignment <= 0.5 s at 2048 px: the 1024 px pipeline took "
          f"{rows[4][1]:.2f} s")
    return 0
