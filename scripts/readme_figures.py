"""Regenerate docs/demo-pack.md's pictures from the committed demo pack.

    .venv/bin/python scripts/readme_figures.py              # writes docs/*.png
    .venv/bin/python scripts/readme_figures.py --only edit  # docs/demo_edit.png only

* ``docs/demo_pack.png``: canvas scenes, the framed crops of their objects (the manifest's
  framing), and the pack's inversions of those crops.
* ``docs/demo_edit.png``: a scene, the selection, and CLIPInverter's and paint-by-word's
  results through the engine's pipeline (colour, shape and size prompts).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.evaluation.pack import invert  # noqa: E402
from engine.imaging import Patch, composite_over, decode_pixels  # noqa: E402
from engine.methods.inversion import Refinement  # noqa: E402
from engine.packs import PackRegistry  # noqa: E402
from engine.runner import EditRunner  # noqa: E402
from engine.training.data import to_tensor  # noqa: E402
from engine.world import frame_of, prompt_for, render_scene, selection_for  # noqa: E402
from protocol.framing import Buffer  # noqa: E402
from protocol.messages import request_for_selection  # noqa: E402

OUT = ROOT / "docs"
EDIT_METHODS = ("clipinverter", "paint-by-word")


def _u8(t: torch.Tensor) -> np.ndarray:
    return ((t.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()


def _label(img: Image.Image, text: str) -> Image.Image:
    out = Image.new("RGB", (img.width, img.height + 14), "white")
    out.paste(img, (0, 14))
    ImageDraw.Draw(out).text((2, 1), text, fill="black")
    return out


def _row(images: list[Image.Image], pad: int = 4) -> Image.Image:
    h = max(i.height for i in images)
    w = sum(i.width for i in images) + pad * (len(images) - 1)
    out = Image.new("RGB", (w, h), "white")
    x = 0
    for i in images:
        out.paste(i, (x, 0))
        x += i.width + pad
    return out


def _column(images: list[Image.Image], pad: int = 6) -> Image.Image:
    w = max(i.width for i in images)
    h = sum(i.height for i in images) + pad * (len(images) - 1)
    out = Image.new("RGB", (w, h), "white")
    y = 0
    for i in images:
        out.paste(i, (0, y))
        y += i.height + pad
    return out


def pack_figure(runner: EditRunner) -> Path:
    pack = runner.packs.get("demo")
    scenes, crops, labels = [], [], []
    for seed in (101, 205, 309):
        scene = render_scene(seed, 256, 192, n_objects=3)
        scenes.append(_label(Image.fromarray(scene.image), f"scene {seed}"))
        for j in range(len(scene.objects)):
            f = frame_of(scene, j, "tight" if j % 2 == 0 else "loose")
            crops.append(f.image)
            labels.append(" ".join(v for v in (f.attrs.get("size"), f.attrs["color"],
                                                  f.attrs["shape"]) if v))
    images = to_tensor(np.stack(crops))
    encoded = _u8(invert(pack, images, refinement=Refinement()))
    inv = _u8(invert(pack, images))
    steps = Refinement.of_pack(pack).steps
    big = 96

    def row(pictures: np.ndarray | list[np.ndarray], label: str) -> Image.Image:
        return _row([_label(Image.fromarray(c).resize((big, big), Image.NEAREST), label)
                     for c in pictures])

    fig = _column([_row(scenes), row(crops, "crop"), row(encoded, "encoder"),
                   row(inv, f"+ {steps} steps")])
    path = OUT / "demo_pack.png"
    fig.save(path)
    return path


def edit_figure(runner: EditRunner, methods: tuple[str, ...] = EDIT_METHODS) -> Path:
    """A scene and its selection, then one row per method: the selected object recoloured,
    reshaped and resized through the engine's whole pipeline (same prompts, seed 1)."""
    scene = render_scene(3, 384, 256, n_objects=3)
    obj = scene.objects[0].attrs
    _, sel = selection_for(scene, 0, "tight")
    h, w = scene.image.shape[:2]
    rgba = np.concatenate([scene.image, np.full((h, w, 1), 255, np.uint8)], axis=2)
    framing = runner.packs.get("demo").framing.to_dict()
    other_color = "blue" if obj["color"] != "blue" else "red"
    other_shape = "circle" if obj["shape"] != "circle" else "square"
    prompts = [prompt_for({"color": other_color, "shape": obj["shape"]}),
               prompt_for({"color": obj["color"], "shape": other_shape}),
               prompt_for({"size": "small", "color": obj["color"], "shape": obj["shape"]})]
    rows = [_row([_label(Image.fromarray(scene.image), "before"),
                  _label(Image.fromarray(sel).convert("RGB"), "selection")])]
    for method in methods:
        panels = []
        for prompt in prompts:
            request = request_for_selection(Buffer("layer", w, h, "rgba8", rgba.tobytes()),
                                            sel.tobytes(), framing, prompt=prompt,
                                            method=method, pack="demo", seed=1)
            outcome = runner.run_local(request)
            patch = outcome.patches[0]
            pixels = decode_pixels(patch.data, patch.width, patch.height, patch.format)
            out = composite_over(rgba, Patch(pixels, outcome.offset, patch.format))
            panels.append(_label(Image.fromarray(out[..., :3]), f'{method}: "{prompt}"'))
        rows.append(_row(panels))
    fig = _column(rows)
    path = OUT / "demo_edit.png"
    fig.save(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=("pack", "edit"),
                        help="regenerate one picture (default: both)")
    args = parser.parse_args()
    OUT.mkdir(exist_ok=True)
    runner = EditRunner(PackRegistry.standard(), "cpu")
    if args.only in (None, "pack"):
        print(pack_figure(runner))
    if args.only in (None, "edit"):
        print(edit_figure(runner))


if __name__ == "__main__":
    main()
