"""Faces for the ``ffhq`` framing: finding them, and aligning each as FFHQ was aligned.

Every method this project implements was made for FFHQ-aligned faces, and an FFHQ encoder
given a face at another angle or place inverts it into another person. So a face pack
frames each face by its landmarks, as e4e's ``utils/alignment.py`` (``align_face``) does
for its inputs:

* dlib's frontal face detector finds the faces (on a copy at most :data:`DETECT_SIDE`
  pixels on a side: the detector's cost grows with the area) and its 68-point shape
  predictor (``shape_predictor_68_face_landmarks.dat``, from the ``face-recognition-models``
  package: nothing is downloaded) places their landmarks on the full-size pixels;
* from the landmarks: the eye centres (means of points 36-41 and 42-47) and the mouth
  corners (points 48 and 54); the oriented square centred at ``eye_avg + 0.1 *
  eye_to_mouth``, of half-side ``max(2 |eye_to_eye|, 1.8 |eye_to_mouth|)``, its x axis
  ``eye_to_eye - flipud(eye_to_mouth) * [-1, 1]`` normalised (:meth:`Face.quad`);
* resampling as ``align_face`` does: shrink by an integer factor (Lanczos) where the square
  is over twice the output, crop with a border of 10% of the square, reflect-pad with a
  blur towards the edge and the median colour where the square leaves the pixels, then a
  bilinear quad transform to the output size (:func:`align`).

Padding happens only at the layer's own edges (``real_edges``): the editors send a context
crop around the selection (``protocol.regions.FFHQ_CONTEXT``), and a square reaching past
a crop edge that is not the layer's is a selection too small for its face, refused with a
sentence. The frame's transform (document -> frame) is the square's similarity, so the
paste-back maps the edit back through its inverse (:func:`engine.imaging.paste_back`).
"""

from __future__ import annotations

import importlib.util
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from scipy import ndimage

from protocol.errors import ErrorCode, WordbrushError
from protocol.regions import Box, FrameTransform, RegionError

from .imaging import FramedRegion, _as_layer, _as_mask, _model_rgb, _nonzero_box

__all__ = ["DETECT_SIDE", "SMALL_FACE_EYES", "Face", "FaceModels", "FacesUnavailable",
           "NoFace", "align", "face_models", "frame_faces", "quad_transform"]

#: the longest side of the copy the detector runs on (a 2048 px photo is detected at half
#: size: dlib's HOG detector finds faces down to about 80 px, 40 px at this scale)
DETECT_SIDE = 1024
#: eye distances (pixels) below which a face is too small for a good inversion: FFHQ's
#: faces have about 260 px between the eyes at 1024 px, e4e's input 65 px at 256 px
SMALL_FACE_EYES = 40.0

INSTALL_HINT = ("faces need dlib and its landmark model: pip install dlib-bin "
                "face-recognition-models (install.py installs them with the engine)")


class FacesUnavailable(WordbrushError):
    code = ErrorCode.PACK_UNAVAILABLE


class NoFace(WordbrushError):
    code = ErrorCode.NO_FACE


@dataclass(frozen=True)
class Face:
    """One face: its 68 landmarks (dlib's pixel coordinates in the image it was found in)
    and the detector's box."""

    landmarks: np.ndarray  # [68, 2] float64, x and y
    detection: Box

    @property
    def eyes(self) -> tuple[np.ndarray, np.ndarray]:
        lm = self.landmarks
        return lm[36:42].mean(axis=0), lm[42:48].mean(axis=0)

    @property
    def eye_distance(self) -> float:
        left, right = self.eyes
        return float(np.hypot(*(right - left)))

    @property
    def centre(self) -> tuple[float, float]:
        """The centre of the landmarks' box (which faces a selection holds)."""
        lo, hi = self.landmarks.min(axis=0), self.landmarks.max(axis=0)
        return float(lo[0] + hi[0]) / 2.0, float(lo[1] + hi[1]) / 2.0

    def quad(self) -> np.ndarray:
        """``[4, 2]``: FFHQ's oriented square (upper-left, lower-left, lower-right,
        upper-right), in the landmarks' coordinates, as ``align_face`` computes it."""
        eye_left, eye_right = self.eyes
        eye_avg = (eye_left + eye_right) * 0.5
        eye_to_eye = eye_right - eye_left
        mouth_avg = (self.landmarks[48] + self.landmarks[54]) * 0.5
        eye_to_mouth = mouth_avg - eye_avg
        x = eye_to_eye - np.flipud(eye_to_mouth) * [-1, 1]
        x /= np.hypot(*x)
        x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
        y = np.flipud(x) * [-1, 1]
        c = eye_avg + eye_to_mouth * 0.1
        return np.stack([c - x - y, c - x + y, c + x + y, c + x - y])

    def translated(self, dx: float, dy: float) -> Face:
        return Face(self.landmarks + np.array([dx, dy]),
                    self.detection.translate(int(dx), int(dy)))


def quad_transform(quad: np.ndarray) -> FrameTransform:
    """The document -> frame similarity that maps ``quad`` (continuous coordinates, the
    order of :meth:`Face.quad`) onto the frame's corners: frame ``(0, 0)`` at ``quad[0]``,
    ``(0, 1)`` at ``quad[1]``, ``(1, 0)`` at ``quad[3]``."""
    q0 = quad[0]
    ex = quad[3] - q0  # the frame's u axis in the document: [a', b'] = 2x
    d = float(ex @ ex)
    a, b = ex[0] / d, -ex[1] / d
    return FrameTransform(a, b, -(a * q0[0] - b * q0[1]), -(b * q0[0] + a * q0[1]))


# ------------------------------------------------------------------------- the models


class FaceModels:
    """dlib's detector and 68-point predictor, loaded once per engine and kept."""

    def __init__(self) -> None:
        try:
            import dlib
        except ImportError:
            raise FacesUnavailable(INSTALL_HINT) from None
        spec = importlib.util.find_spec("face_recognition_models")
        if spec is None or not spec.submodule_search_locations:
            raise FacesUnavailable(INSTALL_HINT)
        # the package's own __init__ imports pkg_resources, which setuptools no longer
        # ships: read its folder without importing it
        path = Path(spec.submodule_search_locations[0]) / "models" / \
            "shape_predictor_68_face_landmarks.dat"
        if not path.is_file():
            raise FacesUnavailable(f"{path} is missing; {INSTALL_HINT}")
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(str(path))
        self._dlib = dlib
        self._lock = threading.Lock()  # dlib's objects are not documented thread-safe

    def find(self, rgb: np.ndarray, detect_side: int = DETECT_SIDE) -> list[Face]:
        """Every frontal face in ``rgb`` (H x W x 3 uint8): detected on a copy at most
        ``detect_side`` on a side, landmarks placed on the full-size pixels."""
        h, w = rgb.shape[:2]
        shrink = max(1, math.ceil(max(h, w) / detect_side))
        small = rgb if shrink == 1 else np.asarray(
            Image.fromarray(rgb).resize((max(1, round(w / shrink)), max(1, round(h / shrink))),
                                        Image.BILINEAR))
        sx, sy = w / small.shape[1], h / small.shape[0]
        faces = []
        with self._lock:
            for rect in self.detector(np.ascontiguousarray(small), 1):
                box = self._dlib.rectangle(round(rect.left() * sx), round(rect.top() * sy),
                                           round(rect.right() * sx), round(rect.bottom() * sy))
                shape = self.predictor(rgb, box)
                points = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
                faces.append(Face(points, Box.from_corners(box.left(), box.top(),
                                                           box.right() + 1, box.bottom() + 1)))
        return faces


_models: FaceModels | None = None
_models_lock = threading.Lock()


def face_models() -> FaceModels:
    """The process's :class:`FaceModels`, loaded at the first call."""
    global _models
    with _models_lock:
        if _models is None:
            _models = FaceModels()
        return _models


# ------------------------------------------------------------------------- alignment


def _resize(image: np.ndarray, size: tuple[int, int], resample: int) -> np.ndarray:
    """H x W x C float32 through Pillow, channel by channel ("F" images)."""
    return np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(image[..., c]), "F")
                                .resize(size, resample)) for c in range(image.shape[2])],
                    axis=-1)


def _quad_sample(image: np.ndarray, quad: np.ndarray, size: int) -> np.ndarray:
    """Pillow's bilinear QUAD transform of each channel to ``size`` x ``size`` (e4e's
    ``img.transform(..., QUAD, (quad + 0.5).flatten(), BILINEAR)``)."""
    data = tuple((quad + 0.5).flatten().tolist())
    return np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(image[..., c]), "F")
                                .transform((size, size), Image.QUAD, data, Image.BILINEAR))
                     for c in range(image.shape[2])], axis=-1)


def align(rgb: np.ndarray, quad: np.ndarray, size: int,
          real_edges: Sequence[bool] = (True, True, True, True),
          mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """``align_face``'s resampling of ``rgb`` (H x W x 3 float in [0, 1]) to the frame of
    ``quad`` (the landmarks' coordinates in ``rgb``), ``size`` pixels on a side, with
    ``mask`` (H x W) framed alike (zeros past the pixels, never reflected).

    ``real_edges`` (left, top, right, bottom): which sides of ``rgb`` are the layer's own
    edges, where the square may reach past and is filled by reflection; past another side
    it is a :class:`RegionError`.
    """
    quad = np.array(quad, dtype=np.float64)
    qsize = float(np.hypot(*(quad[3] - quad[0])))
    h, w = rgb.shape[:2]
    need = (math.floor(quad[:, 0].min()), math.floor(quad[:, 1].min()),
            math.ceil(quad[:, 0].max()), math.ceil(quad[:, 1].max()))
    past = (need[0] < 0, need[1] < 0, need[2] > w, need[3] > h)
    if any(p and not real for p, real in zip(past, real_edges, strict=True)):
        raise RegionError("the face's frame reaches past the pixels the editor sent: "
                          "select the whole face, with some space around it")
    channels = rgb if mask is None else np.concatenate([rgb, mask[..., None]], axis=-1)
    image = channels.astype(np.float32, copy=False)

    shrink = int(np.floor(qsize / size * 0.5))
    if shrink > 1:
        image = _resize(image, (int(np.rint(w / shrink)), int(np.rint(h / shrink))),
                        Image.LANCZOS)
        quad, qsize = quad / shrink, qsize / shrink
    height, width = image.shape[:2]
    border = max(int(np.rint(qsize * 0.1)), 3)
    crop = (max(int(np.floor(quad[:, 0].min())) - border, 0),
            max(int(np.floor(quad[:, 1].min())) - border, 0),
            min(int(np.ceil(quad[:, 0].max())) + border, width),
            min(int(np.ceil(quad[:, 1].max())) + border, height))
    if crop[2] - crop[0] < width or crop[3] - crop[1] < height:
        image = image[crop[1]:crop[3], crop[0]:crop[2]]
        quad = quad - crop[0:2]
    height, width = image.shape[:2]
    pad = (int(np.floor(quad[:, 0].min())), int(np.floor(quad[:, 1].min())),
           int(np.ceil(quad[:, 0].max())), int(np.ceil(quad[:, 1].max())))
    pad = (max(-pad[0] + border, 0), max(-pad[1] + border, 0),
           max(pad[2] - width + border, 0), max(pad[3] - height + border, 0))
    if max(pad) > border - 4:
        pad = tuple(int(p) for p in np.maximum(pad, int(np.rint(qsize * 0.3))))
        widths = ((pad[1], pad[3]), (pad[0], pad[2]))
        colour = np.pad(image[..., :3], (*widths, (0, 0)), mode="reflect")
        hh, ww = colour.shape[:2]
        yy, xx, _ = np.ogrid[:hh, :ww, :1]
        ramp = np.maximum(1.0 - np.minimum(xx.astype(np.float32) / max(pad[0], 1),
                                           (ww - 1 - xx).astype(np.float32) / max(pad[2], 1)),
                          1.0 - np.minimum(yy.astype(np.float32) / max(pad[1], 1),
                                           (hh - 1 - yy).astype(np.float32) / max(pad[3], 1)))
        blur = qsize * 0.02
        colour += (ndimage.gaussian_filter(colour, [blur, blur, 0]) - colour) * \
            np.clip(ramp * 3.0 + 1.0, 0.0, 1.0)
        colour += (np.median(colour, axis=(0, 1)) - colour) * np.clip(ramp, 0.0, 1.0)
        parts = [np.clip(colour, 0.0, 1.0)]
        if mask is not None:
            parts.append(np.pad(image[..., 3:], (*widths, (0, 0)), mode="constant"))
        image = np.concatenate(parts, axis=-1).astype(np.float32)
        quad = quad + pad[:2]
    framed = np.clip(_quad_sample(image, quad, size), 0.0, 1.0)
    return framed[..., :3], (framed[..., 3] if mask is not None else None)


# ------------------------------------------------------------------------- the pipeline


@dataclass(frozen=True)
class FaceFrame:
    """A face framed for the model, and what its result reports."""

    region: FramedRegion
    face: Face  # landmarks in document coordinates (pixel indices, as dlib gives them)

    def info(self) -> dict[str, Any]:
        t = self.region.transform
        return {"box": self.face.detection.to_list(),
                "rotation_deg": round(math.degrees(math.atan2(t.b, t.a)), 2),
                "scale": round(1.0 / (t.scale * self.region.resolution), 4),
                "eye_distance_px": round(self.face.eye_distance, 1)}


def frame_faces(layer: np.ndarray, mask: np.ndarray | None, *, resolution: int,
                transfer: str = "srgb", offset: tuple[int, int] = (0, 0),
                layer_bounds: Box | Sequence[int] | None = None, fmt: str = "rgba8",
                background_rgb: Sequence[float] = (1.0, 1.0, 1.0),
                models: FaceModels | None = None) -> list[FaceFrame]:
    """Every face of ``layer`` (a crop at ``offset`` in the document) whose landmarks' box
    centre lies in the selection, each framed on its own at ``resolution``.

    ``layer_bounds``: the whole layer's box in the document (where its pixels end); None:
    the crop's edges are the layer's. Raises :class:`NoFace` where the selection holds no
    face, and :class:`RegionError` for a selection too small for its face.
    """
    pixels = _as_layer(layer)
    height, width = pixels.shape[:2]
    ox, oy = int(offset[0]), int(offset[1])
    selection = None if mask is None else _as_mask(mask, height, width)
    tight = Box(0, 0, width, height) if selection is None else _nonzero_box(selection)
    if tight is None:
        raise RegionError("the selection is empty")
    bounds = Box.of(layer_bounds) if layer_bounds is not None else Box(ox, oy, width, height)
    real_edges = (ox <= bounds.x, oy <= bounds.y, ox + width >= bounds.x1,
                  oy + height >= bounds.y1)
    rgb = _model_rgb(pixels, transfer, background_rgb)
    rgb8 = np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)
    chosen = []
    for face in (models or face_models()).find(rgb8):
        cx, cy = face.centre
        i, j = int(cy), int(cx)
        inside = 0 <= i < height and 0 <= j < width and (
            selection is None or selection[i, j] > 0)
        if inside:
            chosen.append(face)
    if not chosen:
        raise NoFace("no face found in the selection: select a whole face")
    frames = []
    for face in chosen:
        quad = face.quad()
        image, frame_mask = align(rgb, quad, resolution, real_edges,
                                  np.ones((height, width), np.float32) if selection is None
                                  else selection)
        doc_quad = quad + 0.5 + [ox, oy]  # continuous document coordinates
        transform = quad_transform(doc_quad)
        x0, y0 = np.floor(doc_quad.min(axis=0)).astype(int)
        x1, y1 = np.ceil(doc_quad.max(axis=0)).astype(int)
        square = Box.from_corners(x0, y0, x1, y1)
        cover = square.translate(-ox, -oy).intersect(tight)
        if cover.empty:
            continue
        region = FramedRegion(
            image=torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None]
            .mul(2.0).sub(1.0),
            mask=torch.from_numpy(np.ascontiguousarray(frame_mask))[None, None],
            square=square,
            transform=transform,
            resolution=resolution,
            selection_box=tight.translate(ox, oy),
            patch_box=cover.translate(ox, oy),
            original=pixels[cover.y:cover.y1, cover.x:cover.x1].copy(),
            selection=None if selection is None
            else selection[cover.y:cover.y1, cover.x:cover.x1].copy(),
            selection_edges=(cover.x == 0, cover.y == 0, cover.x1 == width,
                             cover.y1 == height),
            transfer=transfer,
            fmt=fmt,
        )
        frames.append(FaceFrame(region, face.translated(ox, oy)))
    if not frames:
        raise NoFace("no face found in the selection: select a whole face")
    return frames
