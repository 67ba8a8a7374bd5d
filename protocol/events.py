"""Typed views of what the engine sends, shared by the CLI and both editor plugins."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import ErrorCode
from .framing import Buffer, Limits, Message
from .messages import ParamSpec


@dataclass(frozen=True)
class MethodInfo:
    id: str
    title: str
    description: str
    params: tuple[ParamSpec, ...]
    accepts_reference: bool = False
    needs: tuple[str, ...] = ()
    seeded: bool = True  # False: every seed gives the same result (no variations)
    one_pass: bool = False  # no optimisation: fast enough for a live preview

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MethodInfo:
        return cls(
            id=str(data["id"]),
            title=str(data.get("title", data["id"])),
            description=str(data.get("description", "")),
            params=tuple(ParamSpec.from_dict(p) for p in data.get("params", ())),
            accepts_reference=bool(data.get("accepts_reference", False)),
            needs=tuple(data.get("needs", ())),
            seeded=bool(data.get("seeded", True)),
            one_pass=bool(data.get("one_pass", False)),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "params": [p.to_dict() for p in self.params],
            "accepts_reference": self.accepts_reference,
            "needs": list(self.needs),
            "seeded": self.seeded,
            "one_pass": self.one_pass,
        }

    def param(self, name: str) -> ParamSpec | None:
        return next((p for p in self.params if p.name == name), None)


@dataclass(frozen=True)
class PackInfo:
    name: str
    title: str
    domain: str
    resolution: int
    framing: dict[str, Any]
    methods: tuple[str, ...]
    vocabulary: dict[str, list[str]] = field(default_factory=dict)
    examples: tuple[str, ...] = ()
    loaded: bool = False
    error: str | None = None
    default_method: str | None = None  # what a request for this pack naming none runs
    #: how its methods read a prompt: ``{"vocabulary": bool, "keys": [...], "no_effect":
    #: [parameters that read prompts against a vocabulary, off on this pack], "text": str}``;
    #: empty from an engine older than it
    prompt_reading: dict[str, Any] = field(default_factory=dict)
    #: other copies of a pack of this name the engine found and does not use, and why:
    #: ``[{"path": ..., "why": ...}]`` (a broken one, or one found later)
    passed_over: tuple[dict[str, str], ...] = ()
    #: the one-pass method a live preview on this pack runs when the chosen method is not
    #: one; None where the pack has none (or from an engine without previews)
    preview_method: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PackInfo:
        return cls(
            name=str(data["name"]),
            title=str(data.get("title", data["name"])),
            domain=str(data.get("domain", "")),
            resolution=int(data.get("resolution", 0)),
            framing=dict(data.get("framing") or {}),
            methods=tuple(data.get("methods", ())),
            vocabulary=dict(data.get("vocabulary") or {}),
            examples=tuple(data.get("examples", ())),
            loaded=bool(data.get("loaded", False)),
            error=data.get("error"),
            default_method=data.get("default_method"),
            prompt_reading=dict(data.get("prompt_reading") or {}),
            passed_over=tuple(dict(p) for p in data.get("passed_over") or ()
                              if isinstance(p, dict)),
            preview_method=data.get("preview_method"),
        )


def strength_note(info: dict[str, Any]) -> str:
    """"strength 1.25, chosen automatically" (or "as set"): what a result's ``info`` says
    of the strength it used, for the editors' status line; "" where it says nothing."""
    strength = info.get("strength")
    if not isinstance(strength, (int, float)) or isinstance(strength, bool):
        return ""
    how = "as set" if info.get("strength_set") else "chosen automatically"
    return f"strength {strength:g}, {how}"


@dataclass(frozen=True)
class Welcome:
    protocol: int
    engine_version: str
    methods: tuple[MethodInfo, ...]
    packs: tuple[PackInfo, ...]
    limits: Limits
    default_method: str | None
    default_pack: str | None
    device: str
    shared_memory: bool = False  # the engine mapped this client's rings (protocol.shm)
    shared_memory_note: str = ""  # why not, when it was offered and refused
    pipeline_params: tuple[ParamSpec, ...] = ()  # the region pipeline's, taken by every method
    #: the layer formats the engine takes; () from an engine older than the list, which
    #: took rgba8, rgba16 and rgbaf32
    layer_formats: tuple[str, ...] = ()
    #: the engine answers live preview requests (``EditRequest.preview``)
    previews: bool = False

    @classmethod
    def from_message(cls, message: Message) -> Welcome:
        body = message.body
        return cls(
            protocol=int(body.get("protocol", 0)),
            engine_version=str(body.get("engine", "?")),
            methods=tuple(MethodInfo.from_dict(m) for m in body.get("methods", ())),
            packs=tuple(PackInfo.from_dict(p) for p in body.get("packs", ())),
            limits=Limits.from_dict(body.get("limits") or {}),
            default_method=body.get("default_method"),
            default_pack=body.get("default_pack"),
            device=str(body.get("device", "?")),
            shared_memory=body.get("shm") is True,
            shared_memory_note=str(body.get("shm_note", "")),
            pipeline_params=tuple(ParamSpec.from_dict(p)
                                  for p in body.get("pipeline_params", ())),
            layer_formats=tuple(str(f) for f in body.get("layer_formats", ())),
            previews=body.get("previews") is True,
        )

    def takes_layer(self, fmt: str) -> bool:
        """Whether the engine takes layers in ``fmt`` (an older one: not rgbaf16)."""
        return fmt in (self.layer_formats or ("rgba8", "rgba16", "rgbaf32"))

    def method(self, method_id: str) -> MethodInfo | None:
        return next((m for m in self.methods if m.id == method_id), None)

    def pack(self, name: str) -> PackInfo | None:
        return next((p for p in self.packs if p.name == name), None)

    def method_for(self, pack: str | None) -> str | None:
        """The method the engine runs for a request that names none, on ``pack`` (None:
        the default pack): packs may prefer their own (an FFHQ pack paint-by-word, the demo
        pack CLIPInverter)."""
        info = self.pack(pack or self.default_pack or "")
        return (info.default_method if info else None) or self.default_method

    def param_specs(self, method_id: str) -> tuple[ParamSpec, ...] | None:
        """Every parameter a request for ``method_id`` may set: the method's own, then the
        region pipeline's. None when the engine has no such method."""
        info = self.method(method_id)
        return None if info is None else info.params + self.pipeline_params


@dataclass(frozen=True)
class Accepted:
    job: str
    position: int


@dataclass(frozen=True)
class Progress:
    job: str
    step: int
    total: int
    message: str
    preview: Buffer | None = None
    heartbeat: bool = False
    #: a heartbeat for a job whose method has reported no step for long: the engine is
    #: alive, the job may not be (it does not reset the client's silence timeout)
    stalled: bool = False

    @property
    def fraction(self) -> float:
        return self.step / self.total if self.total > 0 else 0.0

    @property
    def worth_showing(self) -> bool:
        """Whether an editor shows this event's message: every step, and the heartbeats
        before the job's first step ("queued, 2 ahead"); later heartbeats only say the
        engine is alive, and would hide the step's text."""
        return not self.heartbeat or self.total == 0


@dataclass(frozen=True)
class Result:
    """The edit's patches: one RGBA buffer per variation, all placed at ``offset``."""

    job: str
    offset: tuple[int, int]
    patches: tuple[Buffer, ...]
    info: dict[str, Any]

    @property
    def warnings(self) -> list[str]:
        return list(self.info.get("warnings", []))


@dataclass(frozen=True)
class Cancelled:
    job: str


@dataclass(frozen=True)
class EngineError:
    code: ErrorCode
    message: str
    job: str | None
    ref: str | None


Event = Accepted | Progress | Result | Cancelled | EngineError


def parse_event(message: Message) -> Event | None:
    """Turn a job-related engine message into an event; other types give None."""
    body = message.body
    job = body.get("job")
    if message.type == "accepted":
        return Accepted(str(job), int(body.get("position", 0)))
    if message.type == "progress":
        return Progress(
            job=str(job),
            step=int(body.get("step", 0)),
            total=int(body.get("total", 0)),
            message=str(body.get("message", "")),
            preview=message.buffer("preview"),
            heartbeat=bool(body.get("heartbeat", False)),
            stalled=bool(body.get("stalled", False)),
        )
    if message.type == "result":
        offset = body.get("offset", [0, 0])
        patches = tuple(sorted(message.buffers_named("patch"), key=lambda b: int(b.name[5:])))
        return Result(str(job), (int(offset[0]), int(offset[1])), patches,
                      dict(body.get("info") or {}))
    if message.type == "cancelled":
        return Cancelled(str(job))
    if message.type == "error":
        return EngineError(
            code=ErrorCode.parse(body.get("code")),
            message=str(body.get("message", "")),
            job=job if isinstance(job, str) else None,
            ref=message.ref,
        )
    return None
