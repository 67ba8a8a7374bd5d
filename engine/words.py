"""Which words of a prompt a pack's CLIP never saw in training.

A pack trained here knows few words: its vocabulary's values (shapes, colours, sizes,
backgrounds), the synonyms its manifest lists, the words of its caption templates, and
the small words any request is written with. "make it bleu" or "un cercle rouge" would
otherwise change the wrong thing and say nothing; the result then carries a warning that
names the words. A pack without a vocabulary (made from the official files, whose CLIP
read the internet) claims nothing.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["FUNCTION_WORDS", "unknown_words"]

#: words a request is written with that carry no attribute: never reported
FUNCTION_WORDS = frozenset(" ".join((
    "a an the this that these those it its it's one ones some any here there now",
    "make makes turn turns change changes become becomes paint recolour recolor replace edit",
    "into to from with of in on at over by for as like than then so",
    "and or but instead rather not no nor only just also too very bit more less same keep",
    "please should would could can want let is are be was were has have give",
    "colour color coloured colored shape shaped size sized object thing",
    "background backdrop image picture photo showing show",
)).split())

_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?", re.UNICODE)


def _template_words(manifest: dict[str, Any]) -> set[str]:
    """The fixed words of the caption templates a pack trained on this world used."""
    if not manifest.get("world"):
        return set()
    from engine.world.captions import HELDOUT_TEMPLATES, TRAIN_TEMPLATES

    words: set[str] = set()
    for template in (*TRAIN_TEMPLATES, *HELDOUT_TEMPLATES):
        words.update(w.lower() for w in _WORD.findall(re.sub(r"\{\w+\}", " ", template)))
    return words


def unknown_words(prompt: str, manifest: dict[str, Any]) -> list[str]:
    """The prompt's words outside what the pack's CLIP was trained on, in order, once each;
    empty for a pack without a vocabulary."""
    vocabulary = manifest.get("vocabulary") or {}
    if not vocabulary:
        return []
    known = set(FUNCTION_WORDS) | _template_words(manifest)
    for values in vocabulary.values():
        for value in values:
            known.update(w.lower() for w in _WORD.findall(str(value)))
    for spellings in (manifest.get("synonyms") or {}).values():
        for words in spellings.values():
            known.update(str(w).lower() for w in words)
    out: list[str] = []
    for word in _WORD.findall(prompt.lower()):
        if word not in known and word not in out:
            out.append(word)
    return out
