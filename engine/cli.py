"""The ``wordbrush`` command line.

Every subcommand prints one clear line and exits non-zero on failure; long work shows a
tqdm progress bar. Heavy imports (torch) happen inside the subcommands that need them,
so ``wordbrush info`` answers fast.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from protocol import endpoints
from protocol.errors import WordbrushError


class CliError(Exception):
    """A user-facing failure: printed as one line, exit code 1 (or ``code``)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------------------- helpers


def _listed(specs: Sequence[Any]) -> str:
    """Parameters with their defaults and what they take, as ``wordbrush info`` lists
    them: ``steps=40 (1..1000)``, ``paste=auto (auto|delta|colour|render)``."""
    def takes(p: Any) -> str:
        if p.choices:
            return f" ({'|'.join(p.choices)})"
        if p.minimum is not None or p.maximum is not None:
            low = "" if p.minimum is None else f"{p.minimum:g}"
            high = "" if p.maximum is None else f"{p.maximum:g}"
            return f" ({low}..{high})"
        return ""

    return ", ".join(f"{p.name}={p.default}{takes(p)}" for p in specs)


def _count(least: int) -> Any:
    """An argparse type: a whole number of at least ``least``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"{value} is under {least}")
        return value
    return parse


def _param_pair(text: str) -> str:
    """``NAME=VALUE`` as typed; the value is read by the parameter's kind later
    (:func:`read_params`), against the specs of the method it goes to."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip() or not value.strip() or len(text.split()) != 1:
        raise argparse.ArgumentTypeError(f"--param takes NAME=VALUE, not {text!r}")
    return text


def read_params(pairs: Sequence[str], specs: Sequence[Any] | None, method: str) -> dict:
    """``--param`` pairs as validated values, by ``protocol.messages.parse_assignments``:
    the one reader of typed parameters, shared with the GIMP plug-in's options field."""
    from protocol.errors import InvalidRequest
    from protocol.messages import parse_assignments

    if not pairs:
        return {}
    if specs is None:
        raise CliError(f"no method {method!r} to take --param")
    try:
        return parse_assignments(" ".join(pairs), specs)
    except InvalidRequest as exc:
        raise CliError(f"--param for {method}: {exc}") from None


def read_request_params(pairs: Sequence[str], welcome: Any, method: str | None,
                        pack: str | None = None) -> dict:
    """:func:`read_params` for a request to a running engine: against what its ``welcome``
    advertises for ``method`` (or the method the engine runs on ``pack`` for a request
    naming none)."""
    method = method or welcome.method_for(pack) or ""
    return read_params(pairs, welcome.param_specs(method), method)


def add_key_args(p: argparse.ArgumentParser) -> None:
    """``--server-key`` and ``--client-key``: for an engine that encrypts (CURVE)."""
    p.add_argument("--server-key", help="an encrypted engine's public key (server.key)")
    p.add_argument("--client-key", help="this machine's secret key (NAME.key_secret)")


def curve_keys(args: argparse.Namespace) -> Any:
    """The CurveKeys ``--server-key`` and ``--client-key`` name, or None; bad files are a
    CliError."""
    from protocol.client import CurveKeys
    from protocol.errors import WordbrushError

    if bool(args.server_key) != bool(args.client_key):  # named as the flags are
        raise CliError("give both --server-key (the engine's server.key) and --client-key "
                       "(this machine's NAME.key_secret)")
    try:
        return CurveKeys.from_settings(args.server_key, args.client_key)
    except (OSError, ValueError, WordbrushError) as exc:
        raise CliError(f"cannot use the key files: {exc}") from None


@contextlib.contextmanager
def engine_for_call(endpoint: str | None, extra_args: Sequence[str] = (),
                    start_timeout: float = 120.0, curve: Any = None
                    ) -> Iterator[tuple[Any, str]]:
    """A connected client: to the running engine, or to one started for this call.

    With an explicit ``--endpoint`` nothing is started: that engine must answer.
    ``curve``: the keys for an engine that encrypts.
    """
    from protocol.client import EngineClient
    from protocol.errors import EngineUnavailable

    target = endpoint or endpoints.default_endpoint()
    client = EngineClient(target, connect_timeout=1.0, curve=curve)
    try:
        client.connect()
    except EngineUnavailable:
        client.close()
        if endpoint is not None:
            raise
    else:
        # the engine goes away mid-call: that error is the caller's, not a reason to start
        # another engine; `bye` on every way out, so the engine frees this call's rings
        with contextlib.closing(client):
            yield client, "running engine"
        return
    # no engine: start one for this call on a private socket
    with private_engine(extra_args, start_timeout) as (client, _):
        yield client, "engine started for this call"


@contextlib.contextmanager
def private_engine(extra_args: Sequence[str] = (),
                   start_timeout: float = 120.0) -> Iterator[tuple[Any, float]]:
    """Start ``wordbrush serve`` on a private socket; yields ``(connected client, seconds
    from launch to its first answer)`` and stops the engine afterwards."""
    from protocol.client import EngineClient
    from protocol.errors import EngineUnavailable

    tmp = tempfile.mkdtemp(prefix="wordbrush-call-")
    private = f"ipc://{tmp}/engine.sock" if endpoints.ipc_supported() \
        else "tcp://127.0.0.1:0"
    cmd = [sys.executable, "-m", "engine", "serve", "--endpoint", private, *extra_args]
    log_path = Path(tmp) / "engine.log"
    launched = time.monotonic()
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT)
    client = EngineClient(private, connect_timeout=start_timeout)
    try:
        deadline = launched + start_timeout
        while True:
            if proc.poll() is not None:
                tail = log_path.read_text(errors="replace").strip().splitlines()[-1:]
                raise CliError(f"the engine did not start: {' '.join(tail) or 'no output'}")
            try:
                client.connect(timeout=1.0)
                break
            except EngineUnavailable:
                if time.monotonic() > deadline:
                    raise CliError(f"the engine did not answer within {start_timeout:.0f} s"
                                   ) from None
        yield client, time.monotonic() - launched
    finally:
        client.close()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def _progress_bar(desc: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=1, desc=desc, unit="step", dynamic_ncols=True,
                disable=not sys.stderr.isatty() and os.environ.get("WORDBRUSH_PROGRESS") != "1")


# ---------------------------------------------------------------------------- serve


def _cluster_runner(args: argparse.Namespace, local: Any) -> Any:
    """``serve --cluster``: the runner that runs jobs on a Ray Serve deployment."""
    try:
        from .cluster import ClusterConfig, ClusterRunner
    except ImportError:
        raise CliError("--cluster needs Ray Serve: python3 install.py --engine-only --cluster "
                       "(or pip install 'ray[serve]')") from None
    from protocol.framing import DEFAULT_LIMITS

    flags = {"address": args.cluster, "min_replicas": args.min_replicas,
             "max_replicas": args.max_replicas, "target_ongoing": args.target_ongoing,
             "gpus_per_replica": args.gpus_per_replica,
             "cpus_per_replica": args.cpus_per_replica,
             "answer_timeout": args.cluster_timeout,
             "pack_dirs": [str(Path(p).resolve()) for p in args.pack_dir],
             "device": args.device, "extra_methods": list(args.extra_methods)}
    if args.cluster_config:
        config = ClusterConfig.from_file(Path(args.cluster_config), **flags)
    else:
        config = ClusterConfig(**{k: v for k, v in flags.items() if v is not None})
    return ClusterRunner(local, config, DEFAULT_LIMITS)


def cmd_serve(args: argparse.Namespace) -> int:
    import importlib

    from . import methods as method_registry
    from .packs import PackRegistry
    from .runner import EditRunner, resolve_device
    from .server import EngineServer, ServerConfig

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    for module in args.extra_methods:
        importlib.import_module(module)
    device = resolve_device(args.device) if not args.cluster else "cpu"  # the front loads none
    packs = PackRegistry.standard(extra=[Path(p) for p in args.pack_dir], device=device)
    runner: Any = EditRunner(packs, device)
    workers = 1
    if args.cluster:
        runner = _cluster_runner(args, runner)
        workers, device = runner.workers, f"cluster {args.cluster}"
    endpoint = args.endpoint or endpoints.default_endpoint()
    server_key, allow_dir = args.server_key, args.allow_dir
    if not endpoints.is_local(endpoint) and server_key is None:
        from .keys import KeysFolder

        keys = KeysFolder()
        if keys.server_secret.is_file():  # `wordbrush keys init` was run
            server_key, allow_dir = str(keys.server_secret), allow_dir or str(keys.allow_dir)
    config = ServerConfig(
        endpoint=endpoint,
        max_queue=args.max_queue, max_per_client=args.max_per_client,
        orphan_seconds=args.orphan_seconds, workers=workers,
        curve_secret_file=Path(server_key) if server_key else None,
        curve_allow_dir=Path(allow_dir) if allow_dir else None,
    )
    server = EngineServer(runner, config)
    offered = ", ".join(method_registry.available()) or "none"
    logging.getLogger("wordbrush.engine").info(
        "engine starting device=%s packs=%s methods=%s", device, ",".join(packs.names()) or "none",
        offered)
    server.serve_forever()
    return 0


# ---------------------------------------------------------------------------- info


def cmd_info(args: argparse.Namespace) -> int:
    from protocol.client import EngineClient

    with EngineClient(args.endpoint, connect_timeout=args.timeout,
                      curve=curve_keys(args)) as client:
        welcome = client.connect()
        status = client.status()
    print(f"engine {welcome.engine_version} (protocol {welcome.protocol}) at {client.endpoint}")
    print(f"device: {welcome.device}; queue: {status['jobs']['queued']} waiting, "
          f"running: {status['jobs']['running'] or 'nothing'}")
    cluster = status.get("cluster")
    if cluster:
        deployment = cluster.get("deployment") or {}
        print(f"cluster {cluster.get('address')}: deployment {deployment.get('status')}, "
              f"{cluster.get('replicas_running', 0)} replica(s) running "
              f"({deployment.get('replicas') or deployment.get('error', '')})")
        for where, seen in sorted((cluster.get("replicas_seen") or {}).items()):
            print(f"  replica at {where}: {seen.get('jobs', 0)} job(s) now, "
                  f"{seen.get('done', 0)} done")
    if welcome.shared_memory:
        transport = "large buffers through shared memory"
    else:
        transport = "every buffer as a frame" + (
            f" (shared memory refused: {welcome.shared_memory_note})"
            if welcome.shared_memory_note else "")
    print(f"transport: {transport}")
    print("packs:")
    for pack in welcome.packs:
        if pack.error:
            print(f"  {pack.name}: BROKEN: {pack.error}")
            continue
        default = " (default)" if pack.name == welcome.default_pack else ""
        runs = f"; runs {pack.default_method} by default" if pack.default_method else ""
        framing = pack.framing.get("kind", "?")
        print(f"  {pack.name}{default}: {pack.title}, {pack.resolution}px, framing {framing}; "
              f"methods: {', '.join(pack.methods) or 'none'}{runs}")
        for other in pack.passed_over:
            print(f"    not used: the copy at {other.get('path')}: {other.get('why')}")
        reading = pack.prompt_reading
        if reading:
            off = reading.get("no_effect") or []
            note = f" ({', '.join(off)}: no effect on this pack)" if off else ""
            print(f"    prompts: {reading.get('text', '')}{note}")
    print("methods:")
    for method in welcome.methods:
        default = " (default)" if method.id == welcome.default_method else ""
        print(f"  {method.id}{default}: {method.title} [{_listed(method.params)}]")
    if welcome.pipeline_params:
        print(f"every method also takes: {_listed(welcome.pipeline_params)}")
    limits = welcome.limits
    print(f"limits: side <= {limits.max_side}, frame <= {limits.max_frame_bytes} bytes, "
          f"prompt <= {limits.max_prompt_chars} chars, variations <= {limits.max_variations}")
    return 0


def cmd_packs(args: argparse.Namespace) -> int:
    from . import methods as method_registry
    from .packs import PackRegistry

    registry = PackRegistry.standard(extra=[Path(p) for p in args.pack_dir])
    needs = {mid: cls.needs for mid, cls in method_registry.available().items()}
    infos = registry.describe(needs)
    if not infos:
        print("no packs installed")
        return 1
    for info in infos:
        if info.get("error"):
            print(f"{info['name']}: BROKEN: {info['error']}")
            continue
        print(f"{info['name']}: {info['title']} ({info['resolution']}px, framing "
              f"{info['framing'].get('kind')}) at {info['path']}; components: "
              f"{', '.join(info['components'])}; methods: {', '.join(info['methods']) or 'none'}")
        for other in info.get("passed_over", ()):
            print(f"  not used: the copy at {other['path']}: {other['why']}")
    return 0


def framing_arg(text: str) -> dict[str, Any]:
    """``--framing``: ``pad``, ``box:F`` (the model crop's side is the selection box's
    longer side / F), or ``ffhq`` (faces, aligned as FFHQ; ``ffhq:C`` sends C times the
    selection's longer side as context)."""
    from protocol.regions import Framing, RegionError

    kind, _, value = text.partition(":")
    try:
        if kind == "pad" and not value:
            return Framing("pad").to_dict()
        if kind == "ffhq":
            return Framing("ffhq", context=float(value) if value else None).to_dict()
        if kind == "box":
            return Framing("box", float(value)).to_dict()
    except (ValueError, RegionError):
        pass
    raise argparse.ArgumentTypeError(f"{text!r}: use pad, box:F with F in (0, 1] (e.g. "
                                     "box:0.6), or ffhq (faces; ffhq:C for C times the "
                                     "selection as context, C in [1, 8])")


#: e4e's dataset_type values of encoders trained on aligned faces (its data_configs.py)
FACE_DATASETS = ("ffhq_encode", "celeba_encode")


def _trained_on_faces(encoder: Path) -> bool:
    """Whether an e4e checkpoint's training options name a face dataset (read memory-mapped:
    the 1 GB file is not loaded)."""
    import torch

    try:
        ckpt = torch.load(encoder, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # not readable here: pack create's verification says why
        return False
    opts = ckpt.get("opts") if isinstance(ckpt, dict) else None
    return isinstance(opts, dict) and opts.get("dataset_type") in FACE_DATASETS


def cmd_pack_create(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .packs import LoadedPack, Manifest, PackError, create_pack, user_pack_dir

    def optional(value: str | None) -> Path | None:
        return Path(value) if value else None

    expects = args.expects
    if args.framing is None:
        args.framing = {"kind": "ffhq"} if args.encoder and _trained_on_faces(
            Path(args.encoder)) else {"kind": "pad"}
        print(f"framing: {args.framing['kind']}" + (
            " (the encoder was trained on faces; --framing pad frames boxes instead)"
            if args.framing["kind"] == "ffhq" else ""))
    if args.framing.get("kind") == "ffhq":  # faces are found with dlib: it must be here
        from .faces import face_models

        face_models()
        expects = expects or "one or more whole faces in the selection"
    out = Path(args.out) if args.out else user_pack_dir() / args.name
    existed = out.exists()
    before = set(out.iterdir()) if existed else set()
    try:  # a file, a manifest or a model that does not load leaves nothing behind
        path = create_pack(out, name=args.name, generator=Path(args.generator),
                           resolution=args.resolution, encoder=optional(args.encoder),
                           clip_model=args.clip_model, clip_weights=optional(args.clip_weights),
                           random_clip=args.random_clip,
                           clipinverter=optional(args.clipinverter), framing=args.framing,
                           domain=args.domain, expects=expects,
                           truncation=args.truncation, neutral_prompt=args.neutral_prompt,
                           link=args.link)
        pack = LoadedPack(Manifest.read(out))
        for component in tqdm(pack.manifest.components(), desc="verifying", unit="model"):
            pack.get(component)
        if pack.has("clipinverter"):  # its networks must fit the pack's other models
            import torch

            from .methods.clipinverter import pack_networks

            try:
                pack_networks(pack, torch.device("cpu"))
            except ValueError as exc:
                raise PackError(f"the CLIPInverter file does not fit this pack: {exc}") from None
    except PackError:
        if existed:  # only what create_pack placed: the folder was there before
            for made in set(out.iterdir()) - before:
                made.unlink()
        elif out.exists():
            shutil.rmtree(out)
        raise
    clip = " (CLIP with random weights: for tests only)" if args.random_clip else ""
    print(f"wrote {path}; components {', '.join(pack.manifest.components())} load "
          f"strictly{clip}")
    return 0


# ---------------------------------------------------------------------------- edit


def _load_rgba8(path: Path) -> tuple[Any, int, int]:
    from PIL import Image

    try:
        with Image.open(path) as img:
            rgba = img.convert("RGBA")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise CliError(f"cannot read image {path}: {exc}") from None
    return rgba, rgba.width, rgba.height


def _load_mask(path: Path, size: tuple[int, int]) -> bytes:
    from PIL import Image

    try:
        with Image.open(path) as img:
            mask = img.convert("L")
            if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
                alpha = img.convert("RGBA").getchannel("A")
                # a selection saved as transparency; an opaque black-and-white mask is
                # read by its grey levels, as --mask's help says
                if alpha.getextrema() != (255, 255):
                    mask = alpha
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise CliError(f"cannot read mask {path}: {exc}") from None
    if mask.size != size:
        raise CliError(f"the mask is {mask.size[0]}x{mask.size[1]} but the image is "
                       f"{size[0]}x{size[1]}; they must match")
    return mask.tobytes()


def build_request(args: argparse.Namespace, welcome: Any, image_path: Path,
                  mask_path: Path | None) -> tuple[Any, Any]:
    """The EditRequest for ``wordbrush edit`` of one image, cropped to the context box of
    its mask."""
    from protocol.framing import Buffer
    from protocol.messages import request_for_selection
    from protocol.regions import RegionError

    image, width, height = _load_rgba8(image_path)
    mask_bytes = _load_mask(mask_path, (width, height)) if mask_path else None
    pack = welcome.pack(args.pack or welcome.default_pack or "")
    reference = None
    if args.reference:
        ref_img, rw, rh = _load_rgba8(Path(args.reference))
        reference = Buffer("reference", rw, rh, "rgba8", ref_img.tobytes())
    params = read_request_params(args.param, welcome, args.method, args.pack)
    if args.strength is not None:
        params["strength"] = args.strength
    try:
        request = request_for_selection(
            Buffer("layer", width, height, "rgba8", image.tobytes()), mask_bytes,
            pack.framing if pack else None, prompt=args.prompt or "", reference=reference,
            method=args.method, pack=args.pack, params=params, seed=args.seed,
            variations=args.variations)
    except RegionError as exc:
        raise CliError(f"{mask_path}: {exc}") from None
    return request, image


def _variation_path(path: Path, index: int) -> Path:
    return path if index == 0 else path.with_name(f"{path.stem}-{index + 1}{path.suffix}")


#: what ``wordbrush edit`` takes from a folder
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp")
MASK_SUFFIX = "-mask"


def edit_inputs(images: list[str], mask: str | None) -> tuple[list[tuple[Path, Path | None]],
                                                              bool]:
    """``([(image, its mask)], batch)``: the images named and those in the folders named
    (masks excluded), each with ``mask`` or else the ``NAME-mask.png`` beside it (None
    where there is none: a batch reports that image as failed). A batch is more than one
    image, or a folder."""
    found: list[Path] = []
    batch = len(images) > 1
    for name in images:
        path = Path(name)
        if path.is_dir():
            batch = True
            found += sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES
                            and not p.stem.endswith(MASK_SUFFIX))
        else:
            found.append(path)
    if not found:
        raise CliError(f"no images in {', '.join(images)} ({', '.join(IMAGE_SUFFIXES)})")
    pairs = []
    for path in found:
        own = path.with_name(path.stem + MASK_SUFFIX + ".png")
        pairs.append((path, Path(mask) if mask else own if own.is_file() or batch else None))
    return pairs, batch


def _write_result(result: Any, request: Any, original: Any, output: Path | None,
                  patch_out: Path | None) -> list[str]:
    """The edited image and/or the patch of each variation; the lines to print."""
    import numpy as np
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    from .imaging import Patch, composite_over, decode_pixels

    base = np.asarray(original, dtype=np.uint8)
    lines = []
    for index, patch in enumerate(result.patches):
        pixels = np.frombuffer(patch.data, np.uint8).reshape(patch.height, patch.width, 4)
        if output is not None:
            decoded = decode_pixels(patch.data, patch.width, patch.height, patch.format)
            out = composite_over(base, Patch(decoded, result.offset, patch.format))
            path = _variation_path(output, index)
            Image.fromarray(out, "RGBA").save(path)
            lines.append(f"wrote {path}")
        if patch_out is not None:
            meta = PngInfo()
            meta.add_text("wordbrush:offset", f"{result.offset[0]},{result.offset[1]}")
            meta.add_text("wordbrush:prompt", request.prompt)
            path = _variation_path(patch_out, index)
            Image.fromarray(np.ascontiguousarray(pixels), "RGBA").save(path, pnginfo=meta)
            lines.append(f"wrote {path} (offset {result.offset[0]},{result.offset[1]})")
    return lines


def _describe_result(info: dict[str, Any], how: str = "") -> list[str]:
    psnr = info.get("inversion_psnr")
    lines = [f"done by {info.get('method')} on {info.get('pack')} in {info.get('elapsed_ms')} "
             f"ms (seeds {info.get('seeds')}, paste {info.get('paste')}"
             + (f", inversion {psnr} dB" if psnr is not None else "")
             + (f"; {how}" if how else "") + ")"]
    for k, face in enumerate(info.get("faces") or []):
        lines.append(f"  face {k + 1}: box {face.get('box')}, rotated "
                     f"{face.get('rotation_deg')} deg, {face.get('scale')} document px a frame "
                     f"px, {face.get('eye_distance_px')} px between the eyes, inversion "
                     f"{face.get('inversion_psnr')} dB")
    return lines


def cmd_edit(args: argparse.Namespace) -> int:
    if not args.prompt and not args.reference:
        raise CliError("give --prompt TEXT (or --reference IMAGE)")
    if not args.output and not args.patch_out:  # before anything runs
        raise CliError("say where the result goes: -o OUT.png (the edited image), "
                       "--patch-out PATCH.png (the new layer), or both; for several images, "
                       "-o FOLDER")
    pairs, batch = edit_inputs(args.image, args.mask)
    extra = [a for p in args.pack_dir for a in ("--pack-dir", p)]
    with engine_for_call(args.endpoint, extra, curve=curve_keys(args)) as (client, how):
        if batch:
            return _edit_batch(args, client, pairs, how)
        (image_path, mask_path), = pairs
        request, original = build_request(args, client.welcome, image_path, mask_path)
        bar = _progress_bar(args.method or client.welcome.method_for(args.pack) or "edit")
        last = [0]

        def on_progress(p: Any) -> None:
            if p.total and bar.total != p.total:
                bar.total = p.total
            bar.update(max(0, p.step - last[0]))
            last[0] = max(last[0], p.step)
            if p.worth_showing:
                bar.set_postfix_str(p.message[:40])

        try:
            result = client.edit(request, on_progress=on_progress)
        finally:
            bar.close()
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    lines = _write_result(result, request, original,
                          Path(args.output) if args.output else None,
                          Path(args.patch_out) if args.patch_out else None)
    print("\n".join(lines + _describe_result(result.info, how)))
    return 0


#: a batch's edits in flight at once on one connection (what an engine lets one client
#: have waiting is 8 by default; the rest wait here, so the engine serves others between)
BATCH_IN_FLIGHT = 4


def _edit_batch(args: argparse.Namespace, client: Any, pairs: list[tuple[Path, Path | None]],
                how: str) -> int:
    """Every image through one connection, a few in flight, one progress bar; a failed
    image is listed at the end and the others go on."""
    from tqdm import tqdm

    from protocol.errors import WordbrushError as ProtocolWordbrushError

    folders = {"output": args.output, "patch_out": args.patch_out}
    for flag, folder in folders.items():
        if folder and Path(folder).suffix.lower() in IMAGE_SUFFIXES:
            raise CliError(f"--{flag.replace('_', '-')} must be a folder for several images, "
                           f"not {folder}")
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    pending = list(pairs)
    in_flight: list[tuple[str, Path, Any, Any]] = []
    bar = tqdm(total=len(pairs), desc="edit", unit="image")
    while pending or in_flight:
        while pending and len(in_flight) < BATCH_IN_FLIGHT:
            image_path, mask_path = pending.pop(0)
            try:
                if mask_path is None or not mask_path.is_file():
                    raise CliError(f"no mask: {mask_path or 'give --mask'} does not exist")
                request, original = build_request(args, client.welcome, image_path, mask_path)
                in_flight.append((client.submit(request), image_path, request, original))
            except (CliError, ProtocolWordbrushError) as exc:
                failures.append(f"{image_path}: {exc}")
                bar.update(1)
        if not in_flight:
            continue
        job, image_path, request, original = in_flight.pop(0)
        bar.set_postfix_str(image_path.name[:30])
        try:
            result = client.wait(job)
            name = image_path.stem + ".png"
            lines = _write_result(
                result, request, original,
                Path(args.output) / name if args.output else None,
                Path(args.patch_out) / (image_path.stem + "-patch.png") if args.patch_out
                else None)
            for warning in result.warnings:
                lines.append(f"warning: {warning}")
            tqdm.write(f"{image_path}: " + "; ".join(lines + _describe_result(result.info)))
        except (ProtocolWordbrushError, OSError) as exc:
            failures.append(f"{image_path}: {exc}")
        bar.update(1)
    bar.close()
    done = len(pairs) - len(failures)
    print(f"{done} of {len(pairs)} images edited ({how})")
    for failure in failures:
        print(f"failed: {failure}", file=sys.stderr)
    return 1 if failures else 0


# ---------------------------------------------------------------------------- bench


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import run_bench

    return run_bench(args)


# ---------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wordbrush", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the engine (local by default)")
    p.add_argument("--endpoint", help="where to listen (default: the per-user local socket)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--pack-dir", action="append", default=[], help="extra folder of packs")
    p.add_argument("--max-queue", type=_count(1), default=32,
                   help="jobs waiting, all clients together (default 32)")
    p.add_argument("--max-per-client", type=_count(1), default=8,
                   help="jobs one client may have waiting (its key on a network engine, its "
                        "connection locally; default 8); clients are served in turn")
    p.add_argument("--orphan-seconds", type=float,
                   help="cancel a running job once its client has been unreachable this long "
                        "(0: never; default 10 on a local endpoint, 60 on a network one)")
    p.add_argument("--server-key", help="the server's .key_secret file (CURVE; remote use)")
    p.add_argument("--allow-dir", help="folder of allowed client public keys (CURVE)")
    p.add_argument("--extra-methods", action="append", default=[], metavar="MODULE",
                   help="import MODULE, which registers extra edit methods")
    p.add_argument("-v", "--verbose", action="store_true")
    cluster = p.add_argument_group(
        "cluster", "run the jobs on a Ray Serve deployment (this engine stays the front)")
    cluster.add_argument("--cluster", metavar="ADDRESS",
                         help="auto (the cluster this machine is part of), HEAD:6379, or "
                              "ray://HEAD:10001")
    cluster.add_argument("--cluster-config", metavar="FILE",
                         help="JSON with the keys of engine.cluster.ClusterConfig (flags "
                              "given win)")
    cluster.add_argument("--min-replicas", type=_count(1))
    cluster.add_argument("--max-replicas", type=_count(1))
    cluster.add_argument("--target-ongoing", type=float,
                         help="Serve's target ongoing requests per replica (default 1)")
    cluster.add_argument("--gpus-per-replica", type=float, help="default 0 (CPU replicas)")
    cluster.add_argument("--cpus-per-replica", type=float, help="default 1")
    cluster.add_argument("--cluster-timeout", type=float, metavar="SECONDS",
                         help="a job whose replica says nothing this long fails (a lost "
                              "cluster); default 180")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("edit", help="edit a region of an image (or of many) from a text prompt")
    p.add_argument("image", nargs="+", help="an image, or several, or folders of them (a "
                                            "batch: each with --mask or its NAME-mask.png)")
    p.add_argument("--prompt", default="")
    p.add_argument("--mask", help="selection mask PNG (white = selected, soft edges kept; "
                                  "a mask with transparency selects where it is opaque)")
    p.add_argument("--reference", help="a reference image instead of (or beside) the prompt")
    p.add_argument("--method")
    p.add_argument("--strength", type=float)
    p.add_argument("--variations", type=int, default=1)
    p.add_argument("--seed", type=int)
    p.add_argument("--pack")
    p.add_argument("--param", action="append", type=_param_pair, default=[],
                   metavar="NAME=VALUE", help="a method or pipeline parameter")
    p.add_argument("-o", "--output", help="the edited image, composited, same size as IMAGE")
    p.add_argument("--patch-out", help="the RGBA patch, its offset in the PNG's metadata")
    p.add_argument("--endpoint", help="use this engine (default: local, started if needed)")
    add_key_args(p)
    p.add_argument("--pack-dir", action="append", default=[])
    p.set_defaults(func=cmd_edit)

    p = sub.add_parser("info", help="what the engine offers (exit 0 only if one answered)")
    p.add_argument("--endpoint")
    add_key_args(p)
    p.add_argument("--timeout", type=float, default=3.0)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("packs", help="list installed model packs")
    p.add_argument("--pack-dir", action="append", default=[])
    p.set_defaults(func=cmd_packs)

    p = sub.add_parser("pack", help="assemble a model pack from files you already have")
    pack_sub = p.add_subparsers(dest="pack_command", required=True)
    p = pack_sub.add_parser("create", help="write a pack folder and verify every model loads")
    p.add_argument("name")
    p.add_argument("--generator", required=True,
                   help="rosinality StyleGAN2 .pt (g_ema), an e4e or CLIPInverter .pt (its "
                        "decoder), or an NVIDIA StyleGAN2-ADA .pkl (converted; nothing in it "
                        "is run)")
    p.add_argument("--encoder", help="e4e checkpoint (e.g. e4e_ffhq_encode.pt)")
    p.add_argument("--clipinverter", metavar="FILE",
                   help="CLIPInverter's released checkpoint (e.g. pretrained_faces.pt)")
    p.add_argument("--resolution", type=int, default=1024)
    p.add_argument("--clip-model", default="ViT-B-32", help="an open_clip model name")
    p.add_argument("--clip-weights", help="open_clip weights file for that model (e.g. "
                                          "open_clip_pytorch_model.bin); required")
    p.add_argument("--random-clip", action="store_true",
                   help="no CLIP weights: an untrained CLIP, for tests only")
    p.add_argument("--truncation", type=float, default=0.7,
                   help="psi of the pack's own samples (the FEU corpus; default 0.7)")
    p.add_argument("--neutral-prompt", help="the domain's neutral text for global directions "
                                            "(e.g. 'a face'; default 'a photo')")
    p.add_argument("--framing", type=framing_arg,
                   help="pad, box:F for aligned objects (F in (0, 1]), or ffhq: faces, each "
                        "aligned as FFHQ was (needs dlib: installed with the engine); default: "
                        "ffhq where the e4e encoder was trained on faces (its dataset_type), "
                        "else pad")
    p.add_argument("--domain", default="")
    p.add_argument("--expects", default="")
    p.add_argument("--link", action="store_true", help="symlink the files instead of copying")
    p.add_argument("--out", help="pack folder (default: the user pack folder / NAME)")
    p.set_defaults(func=cmd_pack_create)

    p = sub.add_parser("keys", help="CURVE keys for a remote engine")
    p.add_argument("--dir", help="keys folder (default ~/.config/wordbrush/keys)")
    keys_sub = p.add_subparsers(dest="keys_command", required=True)
    k = keys_sub.add_parser("init", help="create the engine's key pair")
    k.add_argument("--force", action="store_true", help="replace an existing pair")
    k = keys_sub.add_parser("add-client", help="create and allow a client key pair")
    k.add_argument("name")
    k = keys_sub.add_parser("remove-client", help="disallow a client")
    k.add_argument("name")
    keys_sub.add_parser("list", help="the allowed clients")
    p.set_defaults(func=cmd_keys)

    p = sub.add_parser("frame", help="write each frame the model would see for a selection "
                                     "(and print its transform)")
    p.add_argument("image")
    p.add_argument("--mask", help="selection mask PNG (as for edit); none: the whole image")
    p.add_argument("-o", "--output", required=True, help="folder for frameN.png and "
                                                         "frameN-mask.png")
    p.add_argument("--pack", help="frame as this pack does (its framing and resolution)")
    p.add_argument("--framing", type=framing_arg, default={"kind": "pad"},
                   help="without --pack: pad, box:F or ffhq")
    p.add_argument("--size", type=int, help="frame side (default: the pack's resolution, or "
                                            "256)")
    p.add_argument("--pack-dir", action="append", default=[])
    p.set_defaults(func=cmd_frame)

    p = sub.add_parser("scene", help="draw a canvas scene of the demo world and a selection mask")
    p.add_argument("output", help="scene PNG to write")
    p.add_argument("--mask-out", help="selection mask PNG (default: OUTPUT-mask.png)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--width", type=int, default=384)
    p.add_argument("--height", type=int, default=256)
    p.add_argument("--objects", type=int, default=3)
    p.add_argument("--select", type=int, default=0, help="which object the mask selects")
    p.add_argument("--looseness", choices=("tight", "loose"), default="tight")
    p.set_defaults(func=cmd_scene)

    p = sub.add_parser("eval", help="pack quality gates (eval pack) or the methods' harness "
                                    "(eval edits, the default)")
    p.add_argument("what", nargs="?", choices=("edits", "pack"), default="edits")
    p.add_argument("--pack", help="pack to evaluate (default: the default pack)")
    p.add_argument("--methods", help="comma-separated method ids (default: all the pack runs)")
    p.add_argument("--prompts", metavar="FILE|KINDS",
                   help="edits: a JSON-lines file, one edit a line: {\"prompt\": ..., "
                        "\"target\": {\"color\": ...}, \"region\": \"object0\"|\"object1\"|"
                        "\"all\"}; or built-in prompt kinds, comma-separated from "
                        "color,shape,size,two (default: all four, in held-out templates)")
    p.add_argument("--n", type=_count(1), help="cases per prompt kind (edits, default 20) or "
                                         "held-out crops per set (pack, default 600)")
    p.add_argument("--samples", type=int, default=1000,
                   help="pack: generator samples from random z to judge")
    p.add_argument("--n-refined", type=int, default=200,
                   help="pack: crops per set inverted with the pack's refinement steps (the "
                        "inversion gates); the encoder alone is reported on all --n")
    p.add_argument("--first-scene", type=_count(0), metavar="INDEX",
                   help="edits: index of the first held-out scene of the built-in kinds "
                        "(default: the report's scenes); choose settings on another block "
                        "(e.g. 95000), so that the report is not what they were tuned on")
    p.add_argument("--independent", type=_count(0), default=10,
                   help="independently drawn scenes to recolour (edits)")
    p.add_argument("--param", action="append", type=_param_pair, default=[],
                   metavar="NAME=VALUE", help="a method parameter for every edit")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", nargs="?", const="-", metavar="OUT",
                   help="write the full report as JSON to OUT (no OUT: print it instead of "
                        "the table)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--threads", type=int)
    p.add_argument("--pack-dir", action="append", default=[])
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("precompute", help="a direction method's artefacts for a pack")
    p.add_argument("what", choices=("global-directions", "feu"))
    p.add_argument("--pack", help="pack (default: the default pack)")
    p.add_argument("--images", type=_count(1),
                   help="global-directions: images each channel is probed on (default 32); "
                        "feu: the corpus's size (default 4000)")
    p.add_argument("--batch", type=_count(1),
                   help="images drawn at once (default: what the device and the generator's "
                        "size allow)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--threads", type=int)
    p.add_argument("--pack-dir", action="append", default=[])
    p.set_defaults(func=cmd_precompute)

    p = sub.add_parser("train", help="train the demo pack (resumable; run again to continue)")
    p.add_argument("stage", choices=("demo-pack", *TRAIN_STAGES, *PACK_TRAINING),
                   help="demo-pack = every stage in order, then the pack folder; "
                        "clipinverter = that method's networks for an existing pack")
    p.add_argument("--pack", help="clipinverter: the pack to train for (default pack)")
    p.add_argument("--pack-dir", action="append", default=[])
    p.add_argument("--work", help="checkpoints and samples (default ~/.cache/wordbrush/train/demo)")
    p.add_argument("--out", help="pack folder to write (default: the repository's packs/demo)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N] (default auto)")
    p.add_argument("--minutes", type=float, help="stop (after a checkpoint) after this long")
    p.add_argument("--stage-minutes", type=float, help="time budget for each stage")
    p.add_argument("--steps", type=int, help="override the stage's number of steps")
    p.add_argument("--threads", type=int, help="CPU threads for torch")
    p.add_argument("--paired-weight", type=float,
                   help="clipinverter: weight of the ground-truth edit term (default 1.0; "
                        "0 = the paper's losses only)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("bench", help="measure performance (ratios in the same run)")
    p.add_argument("what", choices=["protocol", "models", "edit", "preview", "load", "faces",
                                    "cluster"])
    p.add_argument("--cluster", help="cluster: a running Ray cluster (default: start one)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--side", type=int, help="protocol: the layer's side (default 4096); "
                                            "faces: the photo's (default 2048)")
    p.add_argument("--image", help="faces: a photo with a face (default: scikit-image's "
                                   "portrait, enlarged)")
    p.add_argument("--device", default="auto")
    p.add_argument("--pack", help="edit: the pack (default: the default pack)")
    p.add_argument("--pack-dir", action="append", default=[], help="edit: extra folder of packs")
    p.add_argument("--method", default="paint-by-word",
                   help="edit, load: the method; preview: the one the full edit is timed with")
    p.add_argument("--variations", type=_count(1), default=1,
                   help="edit: also time N variations in one request against N requests")
    p.add_argument("--clients", type=int, default=4, help="load: concurrent clients")
    p.add_argument("--edits", type=int, default=5, help="load: edits per client (--fair: "
                                                         "the second artist's edits)")
    p.add_argument("--fair", action="store_true",
                   help="load: two artists, one sending a batch, the other one edit a second")
    p.add_argument("--batch", type=_count(1), default=20, help="load --fair: the batch")
    p.add_argument("--hold", type=_count(1), default=8,
                   help="load --fair: the batch's edits in flight at once (default 8: what "
                        "the engine lets one client have waiting)")
    p.add_argument("--param", action="append", type=_param_pair, default=[],
                   metavar="NAME=VALUE", help="edit: a method parameter")
    p.set_defaults(func=cmd_bench)
    return parser


def cmd_frame(args: argparse.Namespace) -> int:
    """What the model sees: each frame the region pipeline would hand the methods."""
    from PIL import Image

    from protocol.framing import Buffer
    from protocol.messages import request_for_selection
    from protocol.regions import Framing, RegionError

    from .packs import PackRegistry
    from .runner import frame_request

    if args.pack:
        try:
            pack = PackRegistry.standard([Path(p) for p in args.pack_dir]).get(args.pack)
        except WordbrushError as exc:
            raise CliError(str(exc)) from None
        framing, size = pack.framing, args.size or pack.resolution
    else:
        framing, size = Framing.from_dict(args.framing), args.size or 256
    image, width, height = _load_rgba8(Path(args.image))
    mask = _load_mask(Path(args.mask), (width, height)) if args.mask else None
    try:  # what an editor sends for this selection, then what the engine frames of it
        request = request_for_selection(Buffer("layer", width, height, "rgba8", image.tobytes()),
                                        mask, framing.to_dict(), prompt="(frame)")
        regions, faces = frame_request(request, framing, size)
    except RegionError as exc:
        raise CliError(str(exc)) from None
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    print(f"framing {framing.kind}, {size}x{size}; sent a "
          f"{request.layer.width}x{request.layer.height} context at {list(request.offset)}")
    for k, region in enumerate(regions):
        rgb = ((region.image[0].permute(1, 2, 0).numpy() + 1.0) * 127.5).round()
        Image.fromarray(rgb.clip(0, 255).astype("uint8"), "RGB").save(out / f"frame{k}.png")
        sel = (region.mask[0, 0].numpy() * 255.0).round().clip(0, 255).astype("uint8")
        Image.fromarray(sel, "L").save(out / f"frame{k}-mask.png")
        t = region.transform
        rotation = math.degrees(math.atan2(t.b, t.a))
        doc_per_frame = 1.0 / (t.scale * size)
        print(f"{out / f'frame{k}.png'}: rotation {rotation:.2f} deg, {doc_per_frame:.3f} "
              f"document px a frame px, square {region.square.to_list()}; document (x, y) -> "
              f"frame (u, v) in [0, 1]: u = a x - b y + tx, v = b x + a y + ty with a = "
              f"{t.a:.6g}, b = {t.b:.6g}, tx = {t.tx:.6g}, ty = {t.ty:.6g}")
        if faces:
            face = faces[k].face
            print(f"  face {k + 1}: detected at {face.detection.to_list()}, "
                  f"{face.eye_distance:.1f} px between the eyes")
    return 0


def cmd_scene(args: argparse.Namespace) -> int:
    from PIL import Image

    from engine.world import render_scene, selection_for

    try:
        scene = render_scene(args.seed, args.width, args.height, n_objects=args.objects)
    except ValueError as exc:
        raise CliError(f"cannot draw that scene: {exc}") from None
    if not 0 <= args.select < len(scene.objects):
        raise CliError(f"--select must be 0..{len(scene.objects) - 1}")
    box, mask = selection_for(scene, args.select, args.looseness)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(scene.image, "RGB").save(out)
    mask_path = Path(args.mask_out) if args.mask_out else out.with_name(out.stem + "-mask.png")
    Image.fromarray(mask, "L").save(mask_path)
    print(f"wrote {out} ({args.width}x{args.height}) and {mask_path}")
    for i, obj in enumerate(scene.objects):
        mark = "*" if i == args.select else " "
        x0, y0, x1, y1 = (round(v) for v in obj.bbox)
        print(f" {mark} object {i}: {obj.attrs['color']} {obj.attrs['shape']} at "
              f"({x0},{y0})-({x1},{y1})")
    print(f"selected object {args.select} with a {args.looseness} box {list(box)}")
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    from .keys import KeyError_, KeysFolder

    keys = KeysFolder(Path(args.dir) if args.dir else None)
    try:
        if args.keys_command == "init":
            public = keys.init(force=args.force)
            print(f"server key pair in {keys.root} (public key: {public}); serve remotely with "
                  "`wordbrush serve --endpoint tcp://0.0.0.0:47615`")
        elif args.keys_command == "add-client":
            secret = keys.add_client(args.name)
            print(f"client {args.name!r} allowed (a running engine lets it in at its next "
                  f"connection). On that machine use {secret} as the client key and "
                  f"{keys.server_public} as the server key (copy both; keep them private)")
        elif args.keys_command == "remove-client":
            if not keys.remove_client(args.name):
                raise CliError(f"no client called {args.name!r}")
            print(f"client {args.name!r} removed: it cannot connect again (a connection it has "
                  "open now lasts until the engine restarts)")
        else:
            for name in keys.clients():
                print(name)
    except KeyError_ as exc:
        raise CliError(str(exc)) from None
    return 0


def _eval_runner(args: argparse.Namespace) -> tuple[Any, str]:
    import torch

    from engine.packs import PackRegistry
    from engine.runner import EditRunner, resolve_device

    torch.set_num_threads(args.threads or torch.get_num_threads())
    device = resolve_device(args.device)
    packs = PackRegistry.standard([Path(p) for p in args.pack_dir], device=device)
    name = args.pack or packs.default
    if name is None:
        raise CliError("no model pack is installed (see `wordbrush packs`)")
    try:
        pack = packs.get(name)
        pack.get("judge")
    except WordbrushError as exc:
        raise CliError(str(exc)) from None
    return EditRunner(packs, device), name


def cmd_eval(args: argparse.Namespace) -> int:
    runner, name = _eval_runner(args)
    if args.what == "pack":
        from engine.evaluation.pack import evaluate_pack

        pack_report = evaluate_pack(runner.packs.get(name), n=args.n or 600,
                                    n_samples=args.samples, n_refined=args.n_refined)
        lines = [f"pack {name}: quality gates"] + ["  " + g.line() for g in pack_report.gates]
        lines.append("all gates pass" if pack_report.passed else "some gates FAIL")
        _print_report(args.json, pack_report.to_dict(), "\n".join(lines))
        return 0 if pack_report.passed else 2
    from engine import methods
    from engine.evaluation.edits import KINDS, evaluate_edits, format_report, read_prompt_file

    available = methods.available()
    chosen = args.methods.split(",") if args.methods else [
        m for m, cls in available.items() if all(runner.packs.get(name).has(c) for c in cls.needs)]
    unknown = [m for m in chosen if m not in available]
    if unknown:
        raise CliError(f"unknown methods {unknown}; available: {', '.join(sorted(available))}")
    from engine.runner import request_param_specs

    taken = {m: {spec.name: spec for spec in request_param_specs(available[m])} for m in chosen}
    specs = {name: spec for m in chosen for name, spec in taken[m].items()}
    params = read_params(args.param, list(specs.values()), ", ".join(chosen))
    # refused before the first edit, not when the run reaches the method
    for m in chosen:
        if missing := sorted(set(params) - set(taken[m])):
            raise CliError(f"--param {', '.join(missing)}: {m} does not take it; evaluate "
                           f"the methods that do in their own run")
    kinds, prompts = list(KINDS), None
    if args.prompts and Path(args.prompts).is_file():
        try:
            prompts = read_prompt_file(Path(args.prompts))
        except ValueError as exc:
            raise CliError(str(exc)) from None
    elif args.prompts:
        kinds = list(dict.fromkeys(args.prompts.split(",")))  # each kind once
        bad = [k for k in kinds if k not in KINDS]
        if bad:
            raise CliError(f"--prompts takes a JSON-lines file or kinds from "
                           f"{', '.join(KINDS)}; {args.prompts!r} is neither (no such file; "
                           f"not kinds: {bad})")
    report = evaluate_edits(runner, name, chosen, kinds, n_per_kind=args.n or 20,
                            n_independent=args.independent, params=params,
                            seed=args.seed, prompts=prompts, first_scene=args.first_scene)
    _print_report(args.json, report, format_report(report))
    return 0


def _print_report(json_out: str | None, report: dict[str, Any], table: str) -> None:
    """The table on stdout, and the JSON in ``json_out`` (``-``: the JSON instead)."""
    import json

    text = json.dumps(report, indent=2)
    if json_out == "-":
        print(text)
        return
    print(table)
    if json_out:
        try:
            Path(json_out).write_text(text + "\n", encoding="utf-8")
        except OSError as exc:
            raise CliError(f"cannot write the JSON report to {json_out}: {exc}") from None
        print(f"wrote {json_out}")


def cmd_precompute(args: argparse.Namespace) -> int:
    import torch

    from engine.packs import PackRegistry
    from engine.runner import resolve_device
    from engine.training.directions import precompute_feu_corpus, precompute_global_directions

    torch.set_num_threads(args.threads or torch.get_num_threads())
    packs = PackRegistry.standard([Path(p) for p in args.pack_dir],
                                  device=resolve_device(args.device))
    name = args.pack or packs.default
    if name is None:
        raise CliError("no model pack is installed (see `wordbrush packs`)")
    try:
        pack = packs.get(name)
        sizes = {"batch": args.batch}
        if args.images is not None:
            sizes["n_images"] = args.images
        if args.what == "global-directions":
            path = precompute_global_directions(pack, **sizes)
        else:
            path = precompute_feu_corpus(pack, **sizes)
    except WordbrushError as exc:
        raise CliError(str(exc)) from None
    except KeyboardInterrupt:
        raise CliError(f"interrupted: the work so far is kept in pack {name!r}'s folder "
                       "(a .partial file); run the same command again to continue") from None
    listed = path.parent / ("pack.json" if (path.parent / "pack.json").is_file()
                            else "components.json")
    print(f"wrote {path} and named it in {listed}")
    return 0


TRAIN_STAGES = ("judge", "clip", "autoencoder", "mapping", "export")
PACK_TRAINING = ("clipinverter",)


def _train_for_pack(args: argparse.Namespace) -> int:
    """Method training on an existing pack (``wordbrush train clipinverter``)."""
    from engine.packs import PackRegistry
    from engine.training.clipinverter import train_clipinverter
    from engine.training.common import pick_device
    from engine.training.demo_pack import default_work_dir

    device = pick_device(args.device)
    packs = PackRegistry.standard([Path(p) for p in args.pack_dir], device=device)
    name = args.pack or packs.default
    if name is None:
        raise CliError("no model pack is installed (see `wordbrush packs`)")
    work = Path(args.work) if args.work else default_work_dir().parent / f"{name}-{args.stage}"
    options: dict[str, Any] = {}
    if args.steps is not None:
        options["stage1_steps"] = args.steps
    if args.paired_weight is not None:
        if args.paired_weight < 0:
            raise CliError("--paired-weight must be 0 or more")
        options["paired"] = args.paired_weight
    budget = args.minutes * 60 if args.minutes else None
    try:
        summary = train_clipinverter(packs.get(name), work, device, budget_s=budget, **options)
    except WordbrushError as exc:
        raise CliError(str(exc)) from None
    if not summary.get("finished"):
        print(f"not finished: run the same command again to resume (work folder {work})")
        return 3
    print(f"done: {summary['file']} (residual gain {summary['residual_gain']:g}, "
          f"work folder {work})")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from engine.training.common import pick_device
    from engine.training.demo_pack import default_work_dir, run_stages

    torch.set_num_threads(args.threads or torch.get_num_threads())
    if args.stage in PACK_TRAINING:
        return _train_for_pack(args)
    stages = list(TRAIN_STAGES) if args.stage == "demo-pack" else [args.stage]
    work = Path(args.work) if args.work else default_work_dir()
    options: dict[str, dict[str, Any]] = {}
    if args.steps is not None:
        if args.stage == "demo-pack":
            raise CliError("--steps applies to one stage; use it with that stage's subcommand")
        options[args.stage] = {"steps": args.steps}
    if args.out:
        options.setdefault("export", {})["out"] = Path(args.out)
    device = pick_device(args.device)  # a ValueError: one line from main()
    finished = run_stages(stages, work, device, minutes=args.minutes,
                          stage_minutes=args.stage_minutes, stage_options=options)
    if not finished:
        print(f"not finished: run `wordbrush train {args.stage} --work {work}` again to resume")
        return 3
    print(f"done: {', '.join(stages)} (work folder {work})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CliError as exc:
        print(f"wordbrush: {exc}", file=sys.stderr)
        return exc.code
    except WordbrushError as exc:
        print(f"wordbrush: {exc.message} [{exc.code.value}]", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("wordbrush: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError) as exc:
        print(f"wordbrush: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
