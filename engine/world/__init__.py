"""The synthetic world the demo pack is trained and judged on (numpy + Pillow only).

* ``spec``: vocabulary, HSV colour regions, size bands, framing numbers (``WORLD_SPEC``).
* ``render``: generator frames (one centred object), batched and seeded.
* ``framing``: selection box -> model frame transform (``BoxFraming``) and cropping.
* ``scenes``: canvas scenes with ground truth, selections and frames.
* ``captions``: caption templates (train / held-out) and ``parse_prompt``.
* ``independent``: the same world drawn by separate plain-Pillow code, for testing.
"""

from engine.world.captions import (
    HELDOUT_TEMPLATES,
    TRAIN_TEMPLATES,
    caption,
    parse_prompt,
    prompt_for,
    random_caption,
)
from engine.world.color import classify_background, classify_rgb, median_rgb, nearest_color
from engine.world.framing import BoxFraming, crop_frame
from engine.world.independent import render_independent_frame, render_independent_scene
from engine.world.render import render_batch, render_edited, render_frame, sample_attrs
from engine.world.scenes import (
    Framed,
    Scene,
    SceneObject,
    choices_rng,
    frame_of,
    framed_attrs,
    render_scene,
    selection_for,
)
from engine.world.spec import (
    ATTR_KEYS,
    BACKGROUNDS,
    COLORS,
    HSV_REGIONS,
    SHAPES,
    SIZE_BANDS,
    SIZES,
    WORLD_SPEC,
    HsvRegion,
    WorldSpec,
    split_seed,
)

__all__ = [
    "ATTR_KEYS",
    "BACKGROUNDS",
    "COLORS",
    "HELDOUT_TEMPLATES",
    "HSV_REGIONS",
    "SHAPES",
    "SIZES",
    "SIZE_BANDS",
    "TRAIN_TEMPLATES",
    "WORLD_SPEC",
    "BoxFraming",
    "Framed",
    "HsvRegion",
    "Scene",
    "SceneObject",
    "WorldSpec",
    "caption",
    "choices_rng",
    "classify_background",
    "classify_rgb",
    "crop_frame",
    "frame_of",
    "framed_attrs",
    "median_rgb",
    "nearest_color",
    "parse_prompt",
    "prompt_for",
    "random_caption",
    "render_batch",
    "render_edited",
    "render_frame",
    "render_independent_frame",
    "render_independent_scene",
    "render_scene",
    "sample_attrs",
    "selection_for",
    "split_seed",
]
