"""The official checkpoint layouts, written from the upstream code's key listings
(:mod:`engine.official_files`), load strictly into this project's models; CLIPInverter's
released checkpoint is read as released."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from engine.loaders import load_clipinverter_file
from engine.models.clipinverter import (
    GAIN_KEY,
    CLIPAdapter,
    CLIPRemapper,
    load_clipinverter,
    save_clipinverter,
)
from engine.models.stylegan2 import Generator
from engine.official_files import (
    clipinverter_layout,
    rosinality_layout,
    write_clipinverter,
)

OFFICIAL_LEVELS = (128, 256, 512)


def _shapes(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


@pytest.mark.parametrize("size", [256, 1024])
def test_generator_is_rosinality_layout(size: int) -> None:
    """171 keys at 1024 (138 parameters, 33 buffers), 135 at 256."""
    with torch.device("meta"):
        generator = Generator(size)
    listing = rosinality_layout(size)
    assert _shapes(generator) == listing
    assert len(listing) == {256: 135, 1024: 171}[size]


def test_clipinverter_listing_counts() -> None:
    """The numbers of the released faces checkpoint: 45 adapter keys, 128 MLP keys and 16
    lambdas beside the generator's 171."""
    listing = clipinverter_layout(1024)
    assert sum(k.startswith("adapter.") for k in listing) == 45
    assert sum(k.startswith("decoder.affine_mlps.") for k in listing) == 128
    assert sum(k.startswith("decoder.lambdas.") for k in listing) == 16


def test_this_projects_networks_save_the_released_layout(tmp_path: Path) -> None:
    """Files this project trains are in the released layout: at the official sizes the keys
    and shapes are exactly the listing's (one layout, not two)."""
    save_clipinverter(CLIPAdapter(), CLIPRemapper(16), tmp_path / "ours.pt")
    ckpt = torch.load(tmp_path / "ours.pt", weights_only=True)
    assert {k: tuple(v.shape) for k, v in ckpt["state_dict"].items()} == clipinverter_layout(1024)
    assert ckpt["opts"]["no_fine_mapper"] is False
    with torch.device("meta"):
        gen = Generator(1024)
    assert load_clipinverter(ckpt, gen, 512, OFFICIAL_LEVELS).embedding == "unit"


def test_released_networks_read_clip_features_as_the_model_gives_them() -> None:
    """What the adapter and remapper of a released file read: CLIP's text features as
    ``encode_text`` returns them (not normalised), as the official ``infer.py`` feeds them;
    a file trained here reads the unit embedding the pack compares images with."""
    from engine.methods.base import MethodInputs
    from engine.methods.clipinverter import network_condition
    from engine.models.clip import create_clip
    from tests.support.packs import CLIP_CONFIG

    clip = create_clip(config=CLIP_CONFIG)
    inputs = MethodInputs(image=torch.zeros(1, 3, 32, 32), mask=torch.ones(1, 1, 32, 32),
                          prompt="a smiling face", params={}, seed=0, pack=None)
    target = clip.encode_prompt("a smiling face")
    raw = clip.model.encode_text(clip.tokenize(["a smiling face"])).float()
    nets = SimpleNamespace(embedding="raw")
    assert torch.allclose(network_condition(nets, clip, inputs, target, None), raw)
    assert abs(float(raw.norm()) - 1) > 0.05
    nets.embedding = "unit"
    assert torch.equal(network_condition(nets, clip, inputs, target, None), target[None])


@pytest.mark.slow
def test_released_checkpoint_loads_as_released(tmp_path: Path) -> None:
    """CLIPInverter's released faces file (adapter under ``adapter.``, the generator and
    remapper under ``decoder.``, the training options) loads strictly through the pack's
    loader, which keeps only what the networks read, on the CPU."""
    path = write_clipinverter(tmp_path / "pretrained_faces.pt", 1024)
    ckpt = torch.load(path, weights_only=True)
    assert len(ckpt["state_dict"]) == 45 + 171 + 128 + 16
    kept = load_clipinverter_file(SimpleNamespace(name="ffhq", file=lambda _c: path), "cpu")
    assert len(kept["state_dict"]) == 45 + 128 + 16  # not the file's generator
    with torch.device("meta"):
        gen = Generator(1024)
    nets = load_clipinverter(kept, gen, 512, OFFICIAL_LEVELS)
    sd = ckpt["state_dict"]
    assert torch.equal(nets.adapter.fine_mapping.modulation_module_list[0].conv.weight,
                       sd["adapter.fine_mapping.modulation_module_list.0.conv.weight"])
    assert torch.equal(nets.remapper.affine_mlps[15][5].bias,
                       sd["decoder.affine_mlps.15.5.bias"])
    assert float(nets.remapper.lambdas[3]) == pytest.approx(0.05)
    assert nets.residual_gain == 1.0  # official files carry no calibration
    assert nets.embedding == "raw"  # the official code feeds clip_model.encode_text as it is
    with pytest.raises(ValueError, match="does not fit"):  # a 256 px domain's pack
        load_clipinverter(kept, Generator(256, channel_multiplier=1), 512, OFFICIAL_LEVELS)


def test_levels_switched_off_in_training_are_read_from_opts(tmp_path: Path) -> None:
    """``no_fine_mapper`` in the options: the file has no fine mapper, and the adapter
    passes the fine features through, as the official code does."""
    path = write_clipinverter(tmp_path / "no_fine.pt", 32, levels=("coarse", "medium"))
    gen = Generator(32, channels={4: 512, 8: 512, 16: 512, 32: 512})
    nets = load_clipinverter(path, gen, 512, OFFICIAL_LEVELS)
    assert nets.adapter.levels == ("coarse", "medium")
    feats = (torch.randn(1, 128, 8, 8), torch.randn(1, 256, 4, 4), torch.randn(1, 512, 2, 2))
    out = nets.adapter(feats, torch.randn(1, 512))
    assert torch.equal(out[0], feats[0]) and not torch.equal(out[2], feats[2])


def test_refusals_name_what_is_wrong(tmp_path: Path) -> None:
    gen = Generator(32, channels={4: 512, 8: 512, 16: 512, 32: 512})
    path = write_clipinverter(tmp_path / "faces.pt", 32)
    ckpt = torch.load(path, weights_only=True)
    old = {("mapper." + k[len("adapter."):] if k.startswith("adapter.") else k): v
           for k, v in ckpt["state_dict"].items()}
    torch.save({"state_dict": old, "opts": ckpt["opts"]}, tmp_path / "old.pt")
    with pytest.raises(ValueError, match=r"'mapper\.'.*train it again"):
        load_clipinverter(tmp_path / "old.pt", gen, 512, OFFICIAL_LEVELS)
    torch.save({"state_dict": ckpt["state_dict"], "opts": {GAIN_KEY: "big"}},
               tmp_path / "bad.pt")
    with pytest.raises(ValueError, match=GAIN_KEY):
        load_clipinverter(tmp_path / "bad.pt", gen, 512, OFFICIAL_LEVELS)
