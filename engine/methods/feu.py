"""``feu``: StyleCLIP-FEU (Kakinuma et al., ``shared/papers/001``), region-aware.

No neutral text: the pack's corpus of CLIP image embeddings of its world (``wordbrush
precompute feu``) is ranked by similarity to the prompt; the ``k`` most similar images are
positives, the ``k`` least similar negatives, and a linear SVM (scikit-learn) separates
them. Its unit normal is the CLIP-space edit direction, turned into a style direction with
the global-directions relevances and applied inside the selection.

Region-aware retrieval (``contrast_region``, on by default): the least similar images
differ from the prompt in everything, so the normal pushes every attribute, also those the
user did not name. With the pack's vocabulary, the pack's CLIP reads the selection ("a
large orange star"); the positives are the images most like that with the prompt's values
("a large blue star"), the negatives the images most like the selection as it is, and the
normal is the edit alone (:func:`.guidance.described_change`; BENCHMARKS.md, session 11).
A reference image, or a prompt naming none of the pack's words, is retrieved as in the
paper.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch

from . import register
from .base import CancelFlag, EditMethod, MethodInputs, MethodOutput, Param, ProgressFn
from .directions import (
    ALPHA,
    AUTO_ALPHA,
    BETA,
    DIRECTIONS_KEEP,
    STRENGTH,
    StyleDirections,
    edit_along,
)
from .guidance import (
    clip_target,
    framed_inputs,
    invert_region,
    keep_unnamed_param,
    reference_weight_param,
    refine_param,
    region_captions,
    region_reader,
    similarity_info,
)

__all__ = ["Feu", "svm_direction"]


def svm_direction(corpus: np.ndarray, text: np.ndarray, k: int, c: float = 1.0,
                  seed: int = 0, keep: float = 0.8,
                  negative_text: np.ndarray | None = None) -> np.ndarray:
    """Unit normal of a linear SVM separating the ``k`` corpus rows most similar to ``text``
    from the ``k`` least similar (the paper's retrieval + SVM), or, given ``negative_text``,
    from the ``k`` rows most similar to that among the others. Each seed fits on its own
    random ``keep`` share of them, so variations differ a little; a seed is deterministic."""
    from sklearn.svm import LinearSVC

    k = max(2, min(k, len(corpus) // 2))
    order = np.argsort(corpus @ text)
    top = order[-k:]
    if negative_text is None:
        bottom = order[:k]
    else:
        others = np.setdiff1d(np.arange(len(corpus)), top)
        bottom = others[np.argsort(corpus[others] @ negative_text)[-k:]]
    rng = np.random.default_rng(seed)
    m = max(1, round(keep * k))
    pos = corpus[top][rng.choice(k, m, replace=False)]
    neg = corpus[bottom][rng.choice(k, m, replace=False)]
    x = np.concatenate([pos, neg])
    y = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))])
    # scikit-learn takes seeds below 2**32; requests may carry any up to 2**63 - 1
    svm = LinearSVC(C=c, random_state=seed % 2**32, max_iter=5000).fit(x, y)
    normal = svm.coef_[0]
    return normal / max(np.linalg.norm(normal), 1e-12)


@register
class Feu(EditMethod):
    id = "feu"
    title = "StyleCLIP-FEU"
    description = ("Direction from an SVM between the pack's images most and least like the "
                   "text (no neutral text needed), applied inside the selection.")
    params: ClassVar[tuple[Param, ...]] = (
        ALPHA, BETA, Param("k", "int", 100, 5, 2000, help="positives and negatives retrieved"),
        STRENGTH, refine_param(False),
        Param("contrast_region", "bool", True,
              help="negatives: the pack's images most like the selection as its CLIP reads "
                   "it, positives: most like that with the prompt's words (off: the images "
                   "most and least like the prompt, as in the paper)", reads_vocabulary=True),
        keep_unnamed_param(DIRECTIONS_KEEP),
        AUTO_ALPHA,
        reference_weight_param(),
    )
    needs = ("generator", "encoder", "clip", "global_directions", "feu_corpus")
    accepts_reference = True

    def run(self, inputs: MethodInputs, progress: ProgressFn, cancel: CancelFlag) -> MethodOutput:
        p = inputs.params
        pack = inputs.pack
        gen, clip = pack.get("generator"), pack.get("clip")
        directions = StyleDirections.from_artefact(pack.get("global_directions"), inputs.device)
        corpus = pack.get("feu_corpus")["embeddings"].float().cpu().numpy()
        x, mask = framed_inputs(inputs, gen.size)
        inv, stages = invert_region(inputs, x, progress, cancel, 3)
        read = region_reader(clip, x)
        captions = None
        if inputs.reference is None and p["contrast_region"]:
            captions = region_captions(inputs.prompt, pack, read)
        if captions is None:
            target, target_text = clip_target(clip, inputs)
            negative, retrieved = None, f"most and least like {target_text}"
        else:
            now, asked = captions
            target = clip.encode_prompt(asked).to(inputs.device)
            negative = clip.encode_prompt(now).cpu().numpy()
            retrieved = f"most like {asked!r} and like {now!r}"
        cancel.check()
        normal = svm_direction(corpus, target.cpu().numpy(), int(p["k"]), seed=inputs.seed,
                               negative_text=negative)
        stages.step(1, f"SVM between the {int(p['k'])} images {retrieved}", None)
        cancel.check()
        direction = torch.from_numpy(normal).float().to(inputs.device)
        edit = edit_along(inputs, x, mask, inv, read, directions, direction, inputs.prompt,
                          texts_from_region=captions is not None, check=cancel.check)
        stages.step(3, f"{edit.channels_moved} style channels moved by α {edit.alpha:g}",
                    edit.image[0])
        cancel.check()
        info = similarity_info(clip, inv.image, edit.image, target)
        info.update(edit.info())
        return MethodOutput(image=edit.image, inversion=inv.image, paste=edit.paste, info=info)
