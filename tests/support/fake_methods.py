"""A test-only edit method that drives the engine without any model.

It is imported by tests (and by test engines via ``wordbrush serve --extra-methods
tests.support.fake_methods``); nothing in the shipped package registers it.
"""

from __future__ import annotations

import time

import torch

from engine import methods
from engine.methods.base import (
    CancelFlag,
    EditMethod,
    MethodInputs,
    MethodOutput,
    Param,
    ProgressFn,
)


@methods.register
class InvertForTests(EditMethod):
    """Inverts the framed region's colours, in ``steps`` steps of ``delay`` seconds."""

    id = "test-invert"
    title = "Invert (tests only)"
    description = "inverts the region's colours; exists only to drive the engine in tests"
    params = (
        Param("steps", "int", 4, minimum=1, maximum=1000),
        Param("delay", "float", 0.0, minimum=0.0, maximum=30.0),
        Param("strength", "float", 1.0, minimum=0.0, maximum=1.0),
        Param("fail", "bool", False),
        Param("jitter", "float", 0.0, minimum=0.0, maximum=1.0),
        Param("unsendable_info", "bool", False),  # a result the wire cannot carry
    )
    accepts_reference = True

    def run(self, inputs: MethodInputs, progress: ProgressFn, cancel: CancelFlag) -> MethodOutput:
        steps, delay = inputs.params["steps"], inputs.params["delay"]
        for step in range(1, steps + 1):
            cancel.check()
            if delay:
                time.sleep(delay)
            progress(step, steps, f"step {step}", inputs.image[0] if step == steps else None)
        if inputs.params["fail"]:
            raise RuntimeError("asked to fail")
        s = inputs.params["strength"]
        noise = torch.rand(1, generator=torch.Generator().manual_seed(inputs.seed)).item()
        # in [-1, 1], inverting is negating; `jitter` makes seeds (variations) differ
        edited = inputs.image * (1 - 2 * s) + inputs.params["jitter"] * (noise - 0.5)
        info: dict = {"noise": noise}
        if inputs.params["unsendable_info"]:
            info["oops"] = object()
        return MethodOutput(image=edited, inversion=inputs.image.clone(), paste="render",
                            info=info)
