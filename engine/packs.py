"""Model packs: a folder with a manifest (``pack.json``) and the model files it names.

A pack is one domain (the embedded demo world, or FFHQ faces assembled from official
files) and everything the methods need for it: the generator, the encoder, a CLIP model
and optional method artefacts. Packs are found in the repository's ``packs/`` folder
(the embedded demo pack), the user's data folder (``$XDG_DATA_HOME/wordbrush/packs``)
and any ``--pack-dir``. They load lazily, component by component, and stay loaded. A pack
with a missing or corrupt file gets a :class:`PackError` naming the file, and the engine
keeps serving its other packs.

Manifest fields (``format`` 1)::

    name, title, domain, expects        identity, and what the domain expects of a region
    resolution                          the generator's output side in pixels
    framing                             {"kind": "box", "factor": F} or {"kind": "pad"}
    generator  {file, format: "rosinality" | "e4e", size, style_dim, n_mlp,
                channel_multiplier, channels}
    encoder    {file, format: "e4e", config: {...}}
    clip       {file, model: "ViT-B-32"} or {file, config: {...}}; {model, random: true}
               without a file: an untrained CLIP, for tests only (refused otherwise)
    components {name: {file, ...}}      optional method artefacts (clipinverter, ...)
    vocabulary {shape: [...], ...}      words the pack's world knows (advertised to editors)
    synonyms   {shape: {circle: [disc, ...]}, ...}  other words people type for a value
                                        (optional; methods read prompts with them)
    examples   [prompt, ...]
    neutral_prompt                      the domain's neutral text (global directions)
    sampling   {truncation}             psi of the pack's own samples (the FEU corpus of a
                                        pack without a world; default 1.0)
    default_method                      the method to use when a request names none (the
                                        one the pack's evaluation found best); optional
    inversion_warning_psnr              below this PSNR a result carries a warning
    inversion  {refine_steps, refine_lr}  Adam steps on W+ after the encoder (default 0: the
                                        encoder alone), see engine.methods.inversion
    world      {...}                    the world's spec, for packs trained here
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from protocol.errors import ErrorCode, WordbrushError
from protocol.regions import Framing

log = logging.getLogger("wordbrush.engine")

MANIFEST_NAME = "pack.json"
MANIFEST_FORMAT = 1
REPO_PACKS = Path(__file__).resolve().parent.parent / "packs"
CORE_COMPONENTS = ("generator", "encoder", "clip")


class PackError(WordbrushError):
    code = ErrorCode.PACK_UNAVAILABLE


def user_pack_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "wordbrush" / "packs"


#: the file in an artefact folder that names what was made there for a pack
OVERLAY_NAME = "components.json"


def artefact_dir(root: Path, name: str) -> Path:
    """Where what is made for a pack goes (``wordbrush precompute``): the pack's own folder,
    or for a pack of this repository (the embedded demo pack), the user's data folder, so
    that a checkout stays clean; the pack reads it from there (:meth:`Manifest.read`)."""
    if Path(os.path.abspath(root)).is_relative_to(os.path.abspath(REPO_PACKS)):
        return user_pack_dir().parent / "pack-artefacts" / name
    return root


@dataclass
class Manifest:
    """A parsed, checked ``pack.json``."""

    root: Path
    data: dict[str, Any]
    #: the folder of components made for this pack elsewhere (:func:`artefact_dir`)
    overlay: Path | None = None

    @property
    def name(self) -> str:
        return str(self.data["name"])

    @property
    def resolution(self) -> int:
        return int(self.data["resolution"])

    @property
    def framing(self) -> Framing:
        return Framing.from_dict(self.data.get("framing") or {"kind": "pad"})

    @property
    def inversion_warning_psnr(self) -> float:
        return float(self.data.get("inversion_warning_psnr", 20.0))

    def component_spec(self, name: str) -> dict[str, Any] | None:
        if name in CORE_COMPONENTS:
            spec = self.data.get(name)
        else:
            spec = (self.data.get("components") or {}).get(name)
        return dict(spec) if isinstance(spec, dict) else None

    def components(self) -> list[str]:
        present = [c for c in CORE_COMPONENTS if self.component_spec(c)]
        return present + sorted((self.data.get("components") or {}).keys())

    def file(self, component: str) -> Path:
        spec = self.component_spec(component) or {}
        rel = spec.get("file")
        if not isinstance(rel, str):
            raise PackError(f"pack {self.name!r}: component {component!r} names no file")
        # a lexical check: names may not climb out of the pack, but files inside it may be
        # symlinks to where the user keeps their checkpoints (`pack create --link`)
        base = self.overlay if spec.get("overlay") and self.overlay is not None else self.root
        root = Path(os.path.abspath(base))
        path = Path(os.path.normpath(root / rel))
        if not path.is_relative_to(root):
            raise PackError(f"pack {self.name!r}: {rel!r} points outside the pack folder")
        return path

    def info(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.data.get("title", self.name),
            "domain": self.data.get("domain", ""),
            "expects": self.data.get("expects", ""),
            "resolution": self.resolution,
            "framing": self.framing.to_dict(),
            "components": self.components(),
            "vocabulary": self.data.get("vocabulary") or {},
            "examples": list(self.data.get("examples") or []),
        }

    @classmethod
    def read(cls, folder: Path) -> Manifest:
        path = folder / MANIFEST_NAME
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise PackError(f"{path} does not exist") from None
        except (OSError, ValueError) as exc:
            raise PackError(f"{path} is not a readable JSON manifest: {exc}") from None
        if not isinstance(data, dict):
            raise PackError(f"{path} must hold a JSON object")
        if data.get("format", MANIFEST_FORMAT) != MANIFEST_FORMAT:
            raise PackError(f"{path}: manifest format {data.get('format')!r} is not supported")
        for key in ("name", "resolution"):
            if key not in data:
                raise PackError(f"{path} has no {key!r}")
        if not isinstance(data["resolution"], int) or data["resolution"] < 8:
            raise PackError(f"{path}: 'resolution' must be an integer of at least 8")
        try:
            Framing.from_dict(data.get("framing") or {"kind": "pad"})
        except (ValueError, TypeError, KeyError) as exc:
            raise PackError(f"{path}: bad 'framing': {exc}") from None
        inversion = data.get("inversion")
        if inversion is not None:
            from engine.methods.inversion import Refinement

            try:
                if not isinstance(inversion, dict):
                    raise TypeError("it must be an object")
                Refinement.from_dict(inversion)
            except (ValueError, TypeError) as exc:
                raise PackError(f"{path}: bad 'inversion': {exc}") from None
        overlay = artefact_dir(folder, str(data["name"]))
        if overlay != folder and (overlay / OVERLAY_NAME).is_file():
            try:
                made = json.loads((overlay / OVERLAY_NAME).read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise PackError(f"{overlay / OVERLAY_NAME} is not readable JSON: {exc}") from None
            if not isinstance(made, dict):
                raise PackError(f"{overlay / OVERLAY_NAME} must hold a JSON object")
            components = dict(data.get("components") or {})
            components.update({k: {**v, "overlay": True} for k, v in made.items()
                               if isinstance(v, dict)})
            data = {**data, "components": components}
            return cls(folder, data, overlay)
        return cls(folder, data)


def checkpoint_problem(path: Path) -> str | None:
    """What is wrong with a model file, from a cheap look at it (no weights are read):
    missing, empty, or not the container its name says (a torch zip with its
    ``data.pkl``, a legacy torch pickle, a safetensors header). None: it looks whole."""
    import zipfile

    try:
        size = path.stat().st_size  # follows a symlink (pack create --link)
    except FileNotFoundError:
        return f"{path.name} is missing"
    except OSError as exc:
        return f"{path.name} cannot be read ({exc.strerror})"
    if size == 0:
        return f"{path.name} is empty"
    try:
        with open(path, "rb") as f:
            head = f.read(16)
        if path.suffix == ".safetensors":
            length = int.from_bytes(head[:8], "little")
            if not 2 <= length <= size - 8 or head[8:9] != b"{":
                return f"{path.name} is not a safetensors file (its header is damaged)"
            return None
        if head[:2] == b"\x80\x02":  # torch's legacy format: a pickle, protocol 2
            return None
        if head[:4] != b"PK\x03\x04":
            return f"{path.name} is not a torch checkpoint (neither a zip nor a pickle)"
        with zipfile.ZipFile(path) as archive:
            if not any(name.endswith("data.pkl") for name in archive.namelist()):
                return f"{path.name} is a zip without a torch data.pkl"
    except zipfile.BadZipFile:
        return f"{path.name} is cut short or damaged (its zip directory cannot be read)"
    except OSError as exc:
        return f"{path.name} cannot be read ({exc.strerror})"
    return None


def pack_problem(manifest: Manifest) -> str | None:
    """The first problem of a pack's files (:func:`checkpoint_problem`), or None."""
    for component in manifest.components():
        spec = manifest.component_spec(component) or {}
        if not spec.get("file"):
            continue
        try:
            path = manifest.file(component)
        except PackError as exc:
            return str(exc)
        problem = checkpoint_problem(path)
        if problem is not None:
            return f"pack {manifest.name!r} at {manifest.root}: the {component} file: {problem}"
    return None


#: component name -> loader(manifest, device) -> loaded object
ComponentLoader = Callable[[Manifest, Any], Any]
_loaders: dict[str, ComponentLoader] = {}


def component_loader(name: str) -> Callable[[ComponentLoader], ComponentLoader]:
    """Register how a component of a pack is loaded (models register theirs)."""

    def deco(fn: ComponentLoader) -> ComponentLoader:
        _loaders[name] = fn
        return fn

    return deco


@dataclass
class LoadedPack:
    """A pack whose components load on first use and then stay in memory."""

    manifest: Manifest
    device: Any = "cpu"
    _cache: dict[str, Any] = field(default_factory=dict)
    #: guards the dictionaries only, never held while anything loads: the engine's I/O
    #: thread reads :meth:`loaded` for every ``hello`` and ``status``
    _lock: threading.Lock = field(default_factory=threading.Lock)
    #: one component loads at a time (a second ``get`` of it waits, then finds it)
    _load_lock: threading.Lock = field(default_factory=threading.Lock)
    _derived: dict[str, Any] = field(default_factory=dict)
    #: why a component failed to load (the pack is reported broken from then on)
    error: str | None = None

    def derived(self, key: str, build: Callable[[], Any]) -> Any:
        """An object built from the pack's components (a method's networks), built once
        and kept as long as the pack, like the components themselves. ``build`` runs
        outside the pack's lock: it loads components."""
        with self._lock:
            if key in self._derived:
                return self._derived[key]
        value = build()
        with self._lock:
            return self._derived.setdefault(key, value)

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def resolution(self) -> int:
        return self.manifest.resolution

    @property
    def framing(self) -> Framing:
        return self.manifest.framing

    def has(self, component: str) -> bool:
        return self.manifest.component_spec(component) is not None

    def get(self, component: str) -> Any:
        """The loaded component; raises PackError naming the file if it cannot load."""
        with self._lock:
            if component in self._cache:
                return self._cache[component]
        with self._load_lock:
            with self._lock:
                if component in self._cache:  # loaded while this call waited
                    return self._cache[component]
            if not self.has(component):
                raise PackError(f"pack {self.name!r} has no {component!r}")
            from . import loaders  # registers the built-in component loaders

            loader = _loaders.get(component) or loaders.generic_loader(component)
            try:
                value = loader(self.manifest, self.device)
            except PackError as exc:
                self.error = str(exc)
                raise
            except FileNotFoundError as exc:
                self.error = f"pack {self.name!r}: the {component} file {exc.filename} is missing"
                raise PackError(self.error) from None
            except Exception as exc:
                path = self.manifest.component_spec(component).get("file", "?")
                self.error = (f"pack {self.name!r}: could not load the {component} from "
                              f"{path}: {exc}")
                raise PackError(self.error) from None
            with self._lock:
                self._cache[component] = value
            return value

    def loaded(self) -> list[str]:
        with self._lock:
            return list(self._cache)

    def __getattr__(self, name: str) -> Any:
        # pack.generator, pack.encoder, pack.clip ... read like attributes
        if name.startswith("_") or name in ("manifest", "device"):
            raise AttributeError(name)
        if self.manifest.component_spec(name) is not None:
            return self.get(name)
        raise AttributeError(f"pack {self.manifest.name!r} has no component {name!r}")


class PackRegistry:
    """Every pack the engine can offer, found in the given folders.

    Each pack is checked when found (its manifest, and a cheap look at every file it
    names: :func:`pack_problem`). A broken one is listed with its reason, never offered
    as the default, and never used in place of a healthy pack of the same name: of two
    packs named alike, the healthy one wins, and of two healthy ones the first found
    (``--pack-dir`` before the repository's packs before the user's); the log says which
    won and why, and :meth:`describe` names the others beside it.
    """

    def __init__(self, folders: Iterable[Path] = (), device: Any = "cpu",
                 default: str | None = None) -> None:
        self.device = device
        self._packs: dict[str, LoadedPack] = {}
        #: name -> (folder, why), for broken packs no healthy pack of that name replaces
        self._broken: dict[str, tuple[str, str]] = {}
        #: name -> [(folder, why not used)] for copies that lost to the pack in use
        self._passed_over: dict[str, list[tuple[str, str]]] = {}
        #: name -> healthy copies found later, in order: used if the pack in use fails to load
        self._spares: dict[str, list[Manifest]] = {}
        self._default = default
        for folder in folders:
            self.scan(Path(folder))

    @classmethod
    def standard(cls, extra: Iterable[Path] = (), device: Any = "cpu") -> PackRegistry:
        return cls([*extra, REPO_PACKS, user_pack_dir()], device=device)

    def scan(self, folder: Path) -> None:
        if not folder.is_dir():
            return
        candidates = [folder] if (folder / MANIFEST_NAME).exists() else sorted(folder.iterdir())
        for sub in candidates:
            if not (sub / MANIFEST_NAME).exists():
                continue
            try:
                manifest = Manifest.read(sub)
            except PackError as exc:
                self._found_broken(sub.name, sub, str(exc))
                continue
            problem = pack_problem(manifest)
            if problem is not None:
                self._found_broken(manifest.name, sub, problem)
                continue
            if manifest.name in self._packs:
                used = self._packs[manifest.name].manifest.root
                self._pass_over(manifest.name, str(sub), f"found after {used}")
                self._spares.setdefault(manifest.name, []).append(manifest)
                continue
            self._packs[manifest.name] = LoadedPack(manifest, self.device)
            if manifest.name in self._broken:  # a healthy pack replaces a broken one
                broken_at, why = self._broken.pop(manifest.name)
                self._pass_over(manifest.name, broken_at, why)

    def _found_broken(self, name: str, folder: Path, why: str) -> None:
        log.warning("pack.broken name=%s path=%s error=%s", name, folder, why)
        if name in self._packs or name in self._broken:  # the one found first stays
            self._pass_over(name, str(folder), why)
        else:
            self._broken[name] = (str(folder), why)

    def _pass_over(self, name: str, folder: str, why: str) -> None:
        """A copy of pack ``name`` at ``folder`` is not the one used, because of ``why``."""
        self._passed_over.setdefault(name, []).append((folder, why))
        used = self._packs[name].manifest.root if name in self._packs else None
        log.warning("pack.passed_over name=%s path=%s using=%s reason=%s", name, folder,
                    used or "none (every copy is broken)", why)

    def add(self, pack: LoadedPack) -> None:
        self._packs[pack.name] = pack

    def names(self) -> list[str]:
        return list(self._packs)

    def broken(self) -> dict[str, str]:
        """Every pack name that cannot be used, and why: found broken, or a component of
        it failed to load since."""
        out = {name: why for name, (_, why) in self._broken.items()}
        out.update({name: pack.error for name, pack in self._packs.items() if pack.error})
        return out

    @property
    def default(self) -> str | None:
        healthy = [name for name, pack in self._packs.items() if not pack.error]
        if self._default in healthy:
            return self._default
        return next(iter(healthy), next(iter(self._packs), None))

    def get(self, name: str | None) -> LoadedPack:
        name = name or self.default
        if name is None:
            raise WordbrushError("no model pack is installed", code=ErrorCode.UNKNOWN_PACK)
        pack = self._packs.get(name)
        if pack is not None and pack.error and self._spares.get(name):
            # the copy in use failed to load: the next healthy copy of that name takes over
            spare = self._spares[name].pop(0)
            failed, why = str(pack.manifest.root), pack.error
            pack = self._packs[name] = LoadedPack(spare, self.device)
            self._passed_over[name] = [(folder, reason) for folder, reason in
                                       self._passed_over.get(name, [])
                                       if folder != str(spare.root)]
            self._pass_over(name, failed, why)
        if pack is None:
            if name in self._broken:
                raise PackError(self._broken[name][1])
            known = ", ".join(self._packs) or "none"
            raise WordbrushError(f"unknown pack {name!r}; installed packs: {known}",
                                 code=ErrorCode.UNKNOWN_PACK)
        return pack

    def describe(self, methods: dict[str, tuple[str, ...]]) -> list[dict[str, Any]]:
        """Pack infos for ``welcome``; ``methods`` maps method id -> needed components. A
        pack a component of which failed to load carries its ``error``; copies passed over
        for a pack are named in its ``passed_over``."""
        out = []
        for pack in self._packs.values():
            info = pack.manifest.info()
            have = set(info["components"])
            info["methods"] = [m for m, needs in methods.items() if set(needs) <= have]
            info["loaded"] = pack.loaded()
            info["path"] = str(pack.manifest.root)
            if pack.error:
                info["error"] = pack.error
            if pack.name in self._passed_over:
                info["passed_over"] = [{"path": folder, "why": why}
                                       for folder, why in self._passed_over[pack.name]]
            out.append(info)
        for name, (folder, error) in self._broken.items():
            out.append({"name": name, "title": name, "error": error, "methods": [],
                        "resolution": 0, "framing": {}, "path": folder})
        return out


def create_pack(
    out: Path,
    *,
    name: str,
    generator: Path,
    resolution: int,
    encoder: Path | None = None,
    clip_model: str = "ViT-B-32",
    clip_weights: Path | None = None,
    random_clip: bool = False,
    clipinverter: Path | None = None,
    framing: dict[str, Any] | None = None,
    domain: str = "",
    expects: str = "",
    truncation: float = 0.7,
    neutral_prompt: str | None = None,
    link: bool = False,
    generator_args: dict[str, Any] | None = None,
) -> Path:
    """Write a pack folder from model files a user already has (nothing is downloaded).

    The files are copied (or symlinked with ``link``) into ``out`` and named in a new
    ``pack.json``; an NVIDIA StyleGAN2-ADA ``.pkl`` generator is converted to rosinality's
    layout (nothing in it is executed: :mod:`engine.models.stylegan2_ada`). A pack needs
    CLIP's trained weights (``clip_weights``): one with a random CLIP is made only when
    asked for (``random_clip``, for tests), and its manifest says so. ``truncation`` is
    the psi of the pack's own samples (the FEU corpus). Returns the manifest's path.
    Verification is the caller's business (``wordbrush pack create`` loads every component
    strictly before it reports success).
    """
    import shutil

    if clip_weights is None and not random_clip:
        raise PackError(f"no CLIP weights: give the {clip_model} weights file you have "
                        "(--clip-weights, e.g. open_clip_pytorch_model.bin); a pack with an "
                        "untrained CLIP edits towards nothing (--random-clip makes one for "
                        "tests)")
    if clip_weights is not None and random_clip:
        raise PackError("--clip-weights and --random-clip exclude each other")
    if not 0.0 < truncation <= 1.0:
        raise PackError(f"truncation must be in (0, 1], not {truncation}")
    out.mkdir(parents=True, exist_ok=True)
    if (out / MANIFEST_NAME).exists():
        raise PackError(f"{out / MANIFEST_NAME} already exists; choose another folder")

    def place(src: Path, dest_name: str) -> str:
        if not src.is_file():
            raise PackError(f"{src} does not exist")
        dest = out / dest_name
        if dest.exists() or dest.is_symlink():
            dest.unlink()
        if link:
            dest.symlink_to(src.resolve())
        else:
            shutil.copy2(src, dest)
        return dest_name

    if generator.suffix == ".pkl":
        if not generator.is_file():
            raise PackError(f"{generator} does not exist")
        from .models.stylegan2_ada import convert_ada_pkl

        try:
            convert_ada_pkl(generator, out / "generator.pt")
        except (ValueError, OSError) as exc:
            raise PackError(f"{generator} is not a StyleGAN2-ADA generator this can read: "
                            f"{exc}") from None
        generator_file = "generator.pt"
    else:
        generator_file = place(generator, "generator" + generator.suffix)
    data: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "name": name,
        "title": name,
        "domain": domain,
        "expects": expects,
        "resolution": resolution,
        "framing": framing or {"kind": "pad"},
        "generator": {"file": generator_file, "size": resolution, **(generator_args or {})},
        "clip": {"model": clip_model},
        "sampling": {"truncation": truncation},
        "inversion_warning_psnr": 18.0,
    }
    if neutral_prompt:
        data["neutral_prompt"] = neutral_prompt
    if encoder is not None:
        data["encoder"] = {"file": place(encoder, "encoder" + encoder.suffix), "format": "e4e"}
    if clip_weights is not None:
        data["clip"]["file"] = place(clip_weights, "clip" + clip_weights.suffix)
    else:
        data["clip"]["random"] = True
    if clipinverter is not None:
        data["components"] = {"clipinverter": {
            "file": place(clipinverter, "clipinverter" + clipinverter.suffix),
            "format": "clipinverter-released"}}
    path = out / MANIFEST_NAME
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path
