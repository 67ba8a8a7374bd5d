"""The one small interface every edit method implements.

A method gets the framed region (the model's square crop, already at the pack's
resolution), the selection mask in that frame, the prompt or a reference image, its
validated parameters and a seed; it reports progress through a callback, checks a cancel
flag between steps, and returns the edited render. It knows nothing of the wire, of
editors, or of where the patch goes: the engine's region pipeline does the framing and
the paste-back, so every method is region-aware through the same code.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch


class Cancelled(Exception):
    """Raised inside a method when its cancel flag is set; the job then returns nothing."""


class InputRejected(ValueError):
    """Raised by a method when the user's inputs cannot be edited as given (the message
    says what to change); the engine answers it as an invalid request, not a crash."""


class CancelFlag:
    """A thread-safe flag that the engine sets and the method checks between steps."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise :class:`Cancelled` if cancellation was asked for."""
        if self._event.is_set():
            raise Cancelled()


@dataclass(frozen=True)
class Param:
    """A tunable parameter: ``kind`` is ``float``, ``int``, ``bool`` or ``choice``.

    Methods only declare their parameters; the engine turns them into the protocol's
    ``ParamSpec`` (which validates values and travels in ``welcome``), so methods stay
    free of the wire.
    """

    name: str
    kind: str
    default: Any
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    help: str = ""
    #: the parameter switches a reading of the prompt against the pack's vocabulary (its
    #: words for shapes, colours, ...): on a pack without one it has no effect
    reads_vocabulary: bool = False
    #: an automatic choice (a bool, on by default) that a request setting any of these
    #: parameters itself turns off, unless it sets this one too: the strength an artist
    #: chose is the strength used
    set_by: tuple[str, ...] = ()


#: progress(step, total, message, preview) — preview is an optional [3, h, w] tensor in [-1, 1]
ProgressFn = Callable[[int, int, str, "torch.Tensor | None"], None]


@dataclass
class MethodInputs:
    """What a method edits. Tensors live on ``device``; images are in [-1, 1]."""

    image: torch.Tensor  # [1, 3, R, R] the framed region
    mask: torch.Tensor  # [1, 1, R, R] the selection in the frame, 0..1 (soft edges kept)
    prompt: str
    params: dict[str, Any]
    seed: int
    pack: Any  # engine.packs.LoadedPack: the models the method declared in `needs`
    reference: torch.Tensor | None = None  # [1, 3, R', R'] a reference image, framed
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    #: the paste the request asked for; "auto": the method's advice (MethodOutput.paste)
    paste: str = "auto"
    #: shared by the variations of one request, for what the seed does not change (an
    #: optimiser's start); None outside a request
    memo: dict[str, Any] | None = None

    def pasted_as(self, advised: str) -> str:
        """How the result will be pasted: the request's choice, else the method's advice."""
        return advised if self.paste == "auto" else self.paste


@dataclass
class MethodOutput:
    """The edited render, and the unedited inversion when the method made one.

    ``inversion`` lets the pipeline paste only the change (detail-preserving mode) and
    report how well the region inverted. ``paste`` is the method's advice for the
    ``auto`` paste mode (``render`` or ``delta``) given what it changed.
    """

    image: torch.Tensor  # [1, 3, R, R]
    inversion: torch.Tensor | None = None
    paste: str | None = None
    info: dict[str, Any] = field(default_factory=dict)


class EditMethod(ABC):
    """Base class of the edit methods in this package (one file each)."""

    id: ClassVar[str]
    title: ClassVar[str]
    description: ClassVar[str] = ""
    params: ClassVar[tuple[Param, ...]] = ()
    #: pack components the method needs: "generator", "encoder", "clip", ...
    needs: ClassVar[tuple[str, ...]] = ()
    #: pack components the method uses where the pack has them (loaded with ``needs``)
    uses: ClassVar[tuple[str, ...]] = ()
    accepts_reference: ClassVar[bool] = False
    #: whether the seed changes the result: an unseeded method's variations would be copies
    seeded: ClassVar[bool] = True
    #: no optimisation loop: one pass (and a strength ladder), fast enough for live previews
    one_pass: ClassVar[bool] = False

    @classmethod
    def components(cls, pack: Any) -> tuple[str, ...]:
        """What to load before a run on ``pack``: ``needs``, and the ``uses`` it has."""
        return cls.needs + tuple(c for c in cls.uses if pack.has(c))

    @abstractmethod
    def run(self, inputs: MethodInputs, progress: ProgressFn, cancel: CancelFlag) -> MethodOutput:
        """Edit ``inputs.image`` for ``inputs.prompt``; deterministic for a given seed."""
