"""EditRunner: turns a validated submit into patches, through the one region pipeline.

layer + selection --frame_region--> model crop --method--> edited render
                  --paste_back--> RGBA patch (alpha = the selection) at a document offset

Variations, seeds, previews, paste modes and the warnings (inversion quality, edits the
method's own check does not read as asked) live here once, so every method gets them the
same way.
"""

from __future__ import annotations

import secrets
import threading
from typing import Any

import numpy as np
import torch

from protocol.errors import ErrorCode, InvalidRequest, WordbrushError
from protocol.events import MethodInfo
from protocol.framing import Buffer
from protocol.messages import PASTE_MODES, EditRequest, ParamSpec, validate_params
from protocol.regions import Framing

from . import imaging, methods
from .faces import SMALL_FACE_EYES, FaceFrame, frame_faces
from .jobs import Job
from .methods.base import Cancelled, EditMethod, InputRejected, MethodInputs, MethodOutput
from .methods.guidance import keeps_background, words_from_reference
from .packs import PackRegistry
from .server import JobOutcome, JobPlan, JobProgress
from .words import unknown_words

#: parameters of the region pipeline itself, accepted by every method
PIPELINE_PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("paste", "choice", "auto", choices=PASTE_MODES,
              help="auto: the method's advice; render: paste the model's render; delta: paste "
                   "only the change (keeps the original's detail); colour: the edit's colour "
                   "change applied to the original (recolours, outline kept)"),
    ParamSpec("feather", "float", 0.0, minimum=0.0, maximum=64.0,
              help="soften the patch's edge inward by this many pixels (never grows)"),
    ParamSpec("keep_background", "bool", True,
              help="a prompt that names no background, on a pack whose words include "
                   "backgrounds: your pixels of the background's colour (the frame's "
                   "border) keep it, and the change stays on the object"),
)
#: pipeline parameters that read the prompt against a vocabulary key of the pack's
VOCABULARY_PIPELINE_PARAMS = {"keep_background": "background"}
DEFAULT_METHOD_ORDER = ("clipinverter", "paint-by-word", "latent-optimization",
                        "global-directions", "feu")


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise WordbrushError("--device cuda was asked for, but no CUDA device is available")
    return torch.device(name)


def method_param_specs(cls: type[EditMethod]) -> list[ParamSpec]:
    return [ParamSpec(p.name, p.kind, p.default, p.minimum, p.maximum, p.choices, p.help)
            for p in cls.params]


def request_param_specs(cls: type[EditMethod]) -> list[ParamSpec]:
    """Every parameter a request for ``cls`` may set: the method's, then the pipeline's."""
    return method_param_specs(cls) + list(PIPELINE_PARAMS)


def method_info(cls: type[EditMethod]) -> MethodInfo:
    """How a method is advertised in ``welcome``."""
    return MethodInfo(id=cls.id, title=cls.title, description=cls.description,
                      params=tuple(method_param_specs(cls)),
                      accepts_reference=cls.accepts_reference, needs=tuple(cls.needs),
                      seeded=cls.seeded, one_pass=cls.one_pass)


def frame_request(request: EditRequest, framing: Framing, resolution: int
                  ) -> tuple[list[imaging.FramedRegion], list[FaceFrame]]:
    """The framed regions a method edits for ``request``: its selection as ``framing``
    frames it at ``resolution``, or with the ``ffhq`` framing every face in the selection,
    each aligned on its own (with what each result reports). What ``wordbrush frame``
    shows is this."""
    layer = imaging.decode_pixels(request.layer.data, request.layer.width,
                                  request.layer.height, request.layer.format)
    mask = None
    if request.mask is not None:
        mask = imaging.decode_pixels(request.mask.data, request.mask.width,
                                     request.mask.height, "a8")
    imaging.check_finite(layer, mask, request.offset, "inside the selection"
                         if mask is not None else "of the layer")
    if framing.kind == "ffhq":
        faces = frame_faces(layer, mask, resolution=resolution,
                            transfer=request.layer.transfer, offset=request.offset,
                            layer_bounds=request.layer_bounds, fmt=request.layer.format)
        return [face.region for face in faces], faces
    framed = imaging.frame_region(layer, mask, framing=framing, resolution=resolution,
                                  transfer=request.layer.transfer, offset=request.offset,
                                  fmt=request.layer.format)
    return [framed], []


def prompt_reading(vocabulary: dict[str, Any] | None) -> dict[str, Any]:
    """How the methods read prompts on a pack with this ``vocabulary`` (its manifest's),
    for ``welcome`` and ``wordbrush info``: the parameters that read prompts against a
    vocabulary, and so have no effect without one (or without the key they read)."""
    vocabulary = vocabulary or {}
    no_effect: set[str] = set()
    if not vocabulary:
        no_effect = {p.name for cls in methods.available().values() for p in cls.params
                     if p.reads_vocabulary}
    no_effect |= {name for name, key in VOCABULARY_PIPELINE_PARAMS.items()
                  if key not in vocabulary}
    if vocabulary:
        text = ("the pack's words (" + ", ".join(sorted(vocabulary)) + ") are read in the "
                "prompt and the selection; other words go to CLIP as typed")
    else:
        text = "free text: the prompt goes to CLIP as typed, as in the papers"
    return {"vocabulary": bool(vocabulary), "keys": sorted(vocabulary),
            "no_effect": sorted(no_effect), "text": text}


def preview_buffer(image: torch.Tensor, max_side: int) -> Buffer:
    """A small rgba8 preview of a [3, h, w] (or [1, 3, h, w]) tensor in [-1, 1], made
    small where the tensor is (a 1024 px render reaches the CPU at the preview's size)."""
    img = image.detach().float()
    if img.dim() == 4:
        img = img[0]
    if max(img.shape[-2:]) > max_side:
        img = torch.nn.functional.interpolate(img[None], size=(max_side, max_side),
                                              mode="bilinear", antialias=True)[0]
    img = img.cpu()
    rgb = ((img.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
    rgba = np.concatenate([rgb, np.full((*rgb.shape[:2], 1), 255, np.uint8)], axis=2)
    return Buffer("preview", rgba.shape[1], rgba.shape[0], "rgba8", np.ascontiguousarray(rgba))


class EditRunner:
    """The engine's runner (see :class:`engine.server.Runner`)."""

    def __init__(self, packs: PackRegistry, device: torch.device | str = "cpu",
                 max_preview_side: int = 128) -> None:
        self.packs = packs
        self.device = torch.device(device)
        self.max_preview_side = max_preview_side
        self._instances: dict[str, EditMethod] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ offer

    def _method_needs(self) -> dict[str, tuple[str, ...]]:
        return {mid: cls.needs for mid, cls in methods.available().items()}

    def default_method(self, pack_name: str | None) -> str | None:
        available = methods.available()
        order = [m for m in DEFAULT_METHOD_ORDER if m in available]
        order += sorted(set(available) - set(order))
        try:
            pack = self.packs.get(pack_name)
        except WordbrushError:
            return order[0] if order else None
        preferred = pack.manifest.data.get("default_method")
        if isinstance(preferred, str) and preferred in available:
            order.insert(0, preferred)
        for mid in order:
            if all(pack.has(c) for c in available[mid].needs):
                return mid
        return None

    def preview_method(self, pack_name: str | None, chosen: str | None = None) -> str | None:
        """The method a live preview on the pack runs: ``chosen`` when it is one-pass and
        the pack can run it, else the first one-pass method the pack can run (None: none)."""
        available = methods.available()
        try:
            pack = self.packs.get(pack_name)
        except WordbrushError:
            return None
        order = [m for m in DEFAULT_METHOD_ORDER if m in available]
        order += sorted(set(available) - set(order))
        if chosen in available:
            order.insert(0, chosen)
        for mid in order:
            cls = available[mid]
            if cls.one_pass and all(pack.has(c) for c in cls.needs):
                return mid
        return None

    def describe(self) -> dict[str, Any]:
        packs = self.packs.describe(self._method_needs())
        for info in packs:
            if not info.get("error"):
                info["default_method"] = self.default_method(info["name"])
                info["preview_method"] = self.preview_method(info["name"])
                info["prompt_reading"] = prompt_reading(info.get("vocabulary"))
        return {
            "methods": [method_info(cls).to_dict() for cls in methods.available().values()],
            "pipeline_params": [p.to_dict() for p in PIPELINE_PARAMS],
            "packs": packs,
            "default_pack": self.packs.default,
            "default_method": self.default_method(None),
            "device": str(self.device),
            "previews": True,
        }

    def status(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "device": str(self.device),
            "loaded_packs": {n: self.packs.get(n).loaded() for n in self.packs.names()},
            "broken_packs": self.packs.broken(),
        }
        if self.device.type == "cuda":
            info["memory"] = {"allocated": torch.cuda.memory_allocated(self.device),
                              "reserved": torch.cuda.memory_reserved(self.device)}
        else:
            try:
                import resource

                info["memory"] = {"max_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}
            except ImportError:  # Windows
                info["memory"] = {}
        return info

    # ------------------------------------------------------------------ plan

    def plan(self, request: EditRequest) -> JobPlan:
        pack = self.packs.get(request.pack)
        method_id = request.method or self.default_method(pack.name)
        available = methods.available()
        cls = available.get(method_id or "")
        if cls is None:
            known = ", ".join(sorted(available)) or "none"
            raise WordbrushError(f"unknown method {method_id!r}; this engine offers: {known}",
                                 code=ErrorCode.UNKNOWN_METHOD)
        request_params = request.params
        if request.preview:
            preview_id = self.preview_method(pack.name, cls.id)
            if preview_id is None:
                raise InvalidRequest(
                    f"pack {pack.name!r} has no one-pass method (clipinverter or "
                    "global-directions) to preview with; run the edit instead")
            if preview_id != cls.id:  # the chosen method's own tuning means nothing here
                cls = available[preview_id]
                known = {p.name for p in request_param_specs(cls)}
                request_params = {k: v for k, v in request.params.items() if k in known}
        missing = [c for c in cls.needs if not pack.has(c)]
        if missing:
            raise WordbrushError(
                f"method {cls.id!r} needs the pack's {', '.join(missing)}, which pack "
                f"{pack.name!r} does not have", code=ErrorCode.INVALID_REQUEST)
        if request.reference is not None and not cls.accepts_reference:
            raise InvalidRequest(f"method {cls.id!r} does not take a reference image")
        specs = request_param_specs(cls)
        try:
            params = validate_params(specs, request_params)
        except InvalidRequest as exc:
            raise WordbrushError(f"{cls.id}: {exc}", code=ErrorCode.INVALID_PARAMS) from None
        for param in cls.params:  # the strength the artist set is the strength used
            if param.set_by and param.name not in request_params and any(
                    name in request_params for name in param.set_by):
                params[param.name] = False
        if request.mask is not None and not np.frombuffer(request.mask.data, np.uint8).any():
            raise InvalidRequest("the selection is empty: select the region to edit, or send "
                                 "no mask to edit the whole layer")
        seed = request.seed if request.seed is not None else secrets.randbits(31)
        return JobPlan(method=cls.id, pack=pack.name, params=params, seed=seed)

    # ------------------------------------------------------------------ run

    def _method(self, method_id: str) -> EditMethod:
        with self._lock:
            inst = self._instances.get(method_id)
            if inst is None:
                cls = methods.get(method_id)
                if cls is None:
                    raise WordbrushError(f"method {method_id!r} is gone",
                                         code=ErrorCode.UNKNOWN_METHOD)
                inst = self._instances[method_id] = cls()
            return inst

    def run_local(self, request: EditRequest, progress: JobProgress | None = None,
                  job_id: str = "local") -> JobOutcome:
        """Plan and run one request in this process, through exactly the engine's pipeline
        (for evaluation and benchmarks: no socket, same code)."""
        plan = self.plan(request)
        job = Job(id=job_id, peer=b"", request=request, method=plan.method, pack=plan.pack,
                  params=plan.params, seed=plan.seed)
        return self.run(job, progress or (lambda *_: None))

    def run(self, job: Job, progress: JobProgress) -> JobOutcome:
        request = job.request
        if request is None:  # finished (cancelled) before it started: its inputs are gone
            raise Cancelled()
        pack = self.packs.get(job.pack)
        method = self._method(job.method)
        params = dict(job.params)
        paste_mode = params.pop("paste", "auto")
        feather = float(params.pop("feather", 0.0))
        # decided once for the request: the prompt is the same for every variation
        keep_background = bool(params.pop("keep_background", True)) \
            and keeps_background(request.prompt, pack)

        progress(0, 1, f"loading pack {pack.name}", None)
        for component in type(method).components(pack):
            pack.get(component)
            job.cancel.check()

        try:  # what the request's pixels cannot give is the request's error, not the method's
            regions, faces = frame_request(request, pack.framing, pack.resolution)
            reference = None
            if request.reference is not None:
                ref = request.reference
                ref_pixels = imaging.decode_pixels(ref.data, ref.width, ref.height, ref.format)
                imaging.check_finite(ref_pixels, None, where="of the reference image")
                reference = imaging.frame_region(ref_pixels, None, framing=pack.framing,
                                                 resolution=pack.resolution,
                                                 transfer=ref.transfer,
                                                 fmt=ref.format).image.to(self.device)
        except imaging.RegionError as exc:
            raise InvalidRequest(str(exc)) from None

        prompt = request.prompt
        reference_read: dict[str, str] | None = None
        if reference is not None and prompt.strip():
            # a prompt and a reference on a pack with words: one text for every method
            worded = words_from_reference(prompt, reference, pack)
            if worded is not None:
                prompt, reference_read = worded
                reference = None
        # an unseeded method gives the same edit for every seed: one result, not N copies
        variations = request.variations if method.seeded and not request.preview else 1
        patches: list[Buffer] = []
        outputs: list[list[MethodOutput]] = []  # per variation, one per region (face)
        seeds = [job.seed + i for i in range(variations)]
        memos: list[dict[str, Any]] = [{} for _ in regions]  # what variations share
        runs = variations * len(regions)
        for index, seed in enumerate(seeds):
            pasted: list[imaging.Patch] = []
            outputs.append([])
            for k, framed in enumerate(regions):
                run = index * len(regions) + k
                prefix = "".join([f"variation {index + 1}/{variations}: " if variations > 1
                                  else "", f"face {k + 1}/{len(regions)}: " if faces and
                                  len(regions) > 1 else ""])

                def step(s: int, total: int, text: str, preview: torch.Tensor | None,
                         run: int = run, prefix: str = prefix) -> None:
                    buf = preview_buffer(preview, self.max_preview_side) \
                        if preview is not None else None
                    progress(run * total + s, runs * total, prefix + text, buf)

                inputs = MethodInputs(image=framed.image.to(self.device),
                                      mask=framed.mask.to(self.device), prompt=prompt,
                                      params=params, seed=seed, pack=pack, reference=reference,
                                      device=self.device, paste=paste_mode, memo=memos[k])
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(seed)
                    try:
                        output = method.run(inputs, step, job.cancel)
                    except InputRejected as exc:
                        raise InvalidRequest(f"{job.method}: {exc}") from None
                job.cancel.check()
                mode = paste_mode if paste_mode != "auto" else (output.paste or "render")
                if mode != "render" and output.inversion is None:  # delta and colour need it
                    mode = "render"
                pasted.append(imaging.paste_back(
                    framed, output.image.detach().cpu(),
                    inversion=None if output.inversion is None
                    else output.inversion.detach().cpu(),
                    mode=mode, feather=feather, keep_background=keep_background))
                outputs[-1].append(output)
            patch = imaging.merge_patches(pasted)
            offset = patch.offset
            if request.preview:  # one image for the docker, never a layer
                layer = imaging.decode_pixels(request.layer.data, request.layer.width,
                                              request.layer.height, request.layer.format)
                shown = imaging.preview_image(layer, request.layer.transfer, patch,
                                              request.offset, request.preview)
                patches.append(Buffer("patch0", shown.shape[1], shown.shape[0], "rgba8",
                                      shown.tobytes(), "srgb"))
                offset = request.offset
                continue
            patches.append(Buffer(f"patch{index}", patch.width, patch.height, patch.fmt,
                                  patch.encode(), request.layer.transfer))

        info: dict[str, Any] = {"method": method.id, "pack": pack.name, "seeds": seeds,
                                "paste": mode, "warnings": []}
        if request.preview:
            info["preview"] = True
        if reference_read is not None:
            info["reference_read_as"] = reference_read
            info["prompt_used"] = prompt
        if variations < request.variations:
            info["warnings"].append(
                f"{method.id} gives one result for a prompt (the seed does not change it), "
                f"so one layer instead of {request.variations}; for variations use a seeded "
                "method (paint-by-word, latent-optimization, feu)")
        psnrs = [None if out.inversion is None else
                 imaging.inversion_psnr(framed.image, out.inversion)
                 for framed, out in zip(regions, outputs[0], strict=True)]
        for k, psnr in enumerate(psnrs):
            if psnr is None or psnr >= pack.manifest.inversion_warning_psnr:
                continue
            which = (f"face {k + 1}" if len(regions) > 1 else "the face") if faces \
                else "the region"
            expects = pack.manifest.data.get("expects") or pack.manifest.data.get("domain")
            info["warnings"].append(
                f"{which} inverted poorly ({psnr:.1f} dB < "
                f"{pack.manifest.inversion_warning_psnr:g} dB): it may not look like this "
                f"pack's world ({expects}); the edit may be poor")
        known = [p for p in psnrs if p is not None]
        if known:
            info["inversion_psnr"] = round(min(known), 2)
        if faces:
            info["faces"] = [{**face.info(), **({} if psnr is None else
                                                {"inversion_psnr": round(psnr, 2)})}
                             for face, psnr in zip(faces, psnrs, strict=True)]
            for k, face in enumerate(faces):
                if face.face.eye_distance < SMALL_FACE_EYES:
                    info["warnings"].append(
                        f"face {k + 1} is small ({face.face.eye_distance:.0f} px between the "
                        f"eyes, under {SMALL_FACE_EYES:.0f}): it is enlarged for the model "
                        "and its edit will be blurry; edit a larger photo for a good result")
        # the strength used, for every method, and whether the artist set it
        params_used, first_info = job.params, outputs[0][0].info
        if "strength" not in first_info and "strength" in params_used:
            alpha = first_info.get("alpha")
            if isinstance(alpha, (int, float)) and params_used.get("alpha"):
                info["strength"] = round(float(alpha) / float(params_used["alpha"]), 4)
            else:
                info["strength"] = params_used["strength"]
        info["strength_set"] = "strength" in request.params
        strange = unknown_words(request.prompt, pack.manifest.data) if request.prompt else []
        if strange:
            keys = ", ".join(sorted(pack.manifest.data.get("vocabulary") or {}))
            info["unknown_words"] = strange
            info["warnings"].append(
                f"this pack's CLIP never saw {', '.join(repr(w) for w in strange)}: it reads "
                f"only its own words ({keys}: `wordbrush info` lists them); the edit may not "
                "follow those words")
        first = outputs[0][0]
        if first.info.get("read_as_asked") is False:
            # the one-pass methods' own check (the pack's CLIP on the pasted edit): edits
            # it does not read as asked fail the judge four times in five on held-out
            # scenes (BENCHMARKS.md, session 16)
            info["warnings"].append(
                "the pack's CLIP does not read the edit as asked: it may not show what you "
                "asked for (try another strength, paint-by-word, or another selection)")
        info.update({k: v for k, v in first.info.items() if k not in info})
        return JobOutcome(offset=offset, patches=patches, info=info)
