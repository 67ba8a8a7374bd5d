"""Captions for training and evaluation, and the prompt parser evaluation uses.

Caption words are the attribute values themselves (``size`` uses "small"/"large"). Every
template names at least one attribute, and no template's fixed words are vocabulary words,
so ``parse_prompt(caption(attrs, t))`` recovers exactly the attributes ``t`` mentions.
``HELDOUT_TEMPLATES`` never appear in training; zero-shot evaluation uses them.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence

import numpy as np

from engine.world.spec import ATTR_KEYS, WORLD_SPEC, WorldSpec

__all__ = [
    "HELDOUT_TEMPLATES",
    "SYNONYMS",
    "TRAIN_TEMPLATES",
    "caption",
    "parse_prompt",
    "prompt_for",
    "random_caption",
    "template_fields",
]

TRAIN_TEMPLATES: tuple[str, ...] = (
    "a {size} {color} {shape} on a {background} background",
    "a {color} {shape}",
    "a {size} {color} {shape}",
    "a {color} {shape} on {background}",
    "a {size} {shape} on a {background} background",
    "a {color} shape on a {background} background",
    "a picture of a {size} {color} {shape}",
    "{color} {shape}, {background} background",
    "a {size} {shape}",
    "a {shape} on a {background} background",
)

HELDOUT_TEMPLATES: tuple[str, ...] = (
    "a photo of a {size} {color} {shape} against a {background} backdrop",
    "a {shape} coloured {color}",
    "there is a {size} {shape} here",
    "a {color} shape on {background}",
    "an image showing a {color} {shape}",
    "{size} {color} {shape} over {background}",
)

# Words a person may type for each value; captions only use the canonical word.
SYNONYMS: dict[str, dict[str, tuple[str, ...]]] = {
    "shape": {
        "circle": ("circle", "circles", "disc", "disk", "dot", "ball"),
        "square": ("square", "squares", "box"),
        "triangle": ("triangle", "triangles"),
        "star": ("star", "stars"),
    },
    "color": {
        "red": ("red",),
        "orange": ("orange",),
        "yellow": ("yellow",),
        "green": ("green",),
        "blue": ("blue",),
        "purple": ("purple", "violet"),
        "white": ("white",),
        "black": ("black",),
    },
    "size": {
        "small": ("small", "little", "tiny"),
        "large": ("large", "big", "huge"),
    },
    "background": {
        "beige": ("beige",),
        "grey": ("grey", "gray"),
        "mint": ("mint",),
        "pink": ("pink",),
    },
}


def template_fields(template: str) -> tuple[str, ...]:
    """Attribute keys a template mentions, in order."""
    return tuple(f for _, f, _, _ in string.Formatter().parse(template) if f)


def _fix_articles(text: str) -> str:
    return re.sub(r"\b([Aa]) (?=[aeiouAEIOU])", r"\1n ", text)


def caption(attrs: Mapping[str, str], template: str) -> str:
    """Fill ``template`` with ``attrs`` (only the keys it mentions are needed)."""
    fields = template_fields(template)
    missing = [f for f in fields if f not in attrs or attrs[f] is None]
    if missing:
        raise KeyError(f"template needs {missing}")
    return _fix_articles(template.format(**{f: attrs[f] for f in fields}))


def random_caption(
    attrs: Mapping[str, str],
    rng: np.random.Generator,
    templates: Sequence[str] = TRAIN_TEMPLATES,
) -> str:
    """A caption from a uniformly chosen template among those ``attrs`` can fill."""
    usable = [t for t in templates if all(attrs.get(f) for f in template_fields(t))]
    return caption(attrs, usable[int(rng.integers(len(usable)))])


def prompt_for(attrs: Mapping[str, str | None]) -> str:
    """An edit prompt describing the target: {"color": "green", "shape": "triangle"} ->
    "a green triangle"; without a shape, "a green shape"; a background adds "on a ...
    background"."""
    words = [attrs[k] for k in ("size", "color") if attrs.get(k)]
    words.append(attrs.get("shape") or "shape")
    text = "a " + " ".join(str(w) for w in words)
    if attrs.get("background"):
        text += f" on a {attrs['background']} background"
    return _fix_articles(text)


_LEXICON: dict[str, tuple[str, str]] = {
    word: (key, value)
    for key, values in SYNONYMS.items()
    for value, words in values.items()
    for word in words
}


def parse_prompt(text: str, spec: WorldSpec = WORLD_SPEC) -> dict[str, str]:
    """Target attributes named in a prompt: "a green triangle" -> {color, shape}.

    Object colours and background names are disjoint words, so no grammar is needed.
    Raises ValueError when a prompt names two different values for one attribute.
    """
    found: dict[str, str] = {}
    for word in re.findall(r"[a-z]+", text.lower()):
        hit = _LEXICON.get(word)
        if hit is None:
            continue
        key, value = hit
        if key == "color" and value not in spec.colors:
            continue
        if found.get(key, value) != value:
            raise ValueError(f"prompt names two {key}s: {found[key]!r} and {value!r}")
        found[key] = value
    return {k: found[k] for k in ATTR_KEYS if k in found}
