"""OpenCLIP wrapper: offline construction, strict local weights, tokenizer, gradients."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import open_clip
import pytest
import torch
import torch.nn.functional as F

import engine.models.clip as clip_mod
from engine.models.clip import (
    TINY_CLIP_CONFIG,
    ClipModel,
    create_clip,
    save_clip,
    save_clip_local_dir,
)

EOT = 49407
LONG = "a photo of " + "a very very shiny " * 20 + "red star"


@pytest.fixture(autouse=True)
def _no_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("tried to download")

    for name in (
        "download_pretrained",
        "download_pretrained_from_hf",
        "download_pretrained_from_url",
    ):
        if hasattr(open_clip.factory, name):
            monkeypatch.setattr(open_clip.factory, name, refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def tiny() -> ClipModel:
    torch.manual_seed(0)
    return create_clip(config=TINY_CLIP_CONFIG)


def _img(n: int = 2, size: int = 64) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(3)) * 2 - 1


def test_tiny_properties(tiny: ClipModel) -> None:
    assert (tiny.image_size, tiny.embed_dim, tiny.context_length) == (64, 64, 24)
    n = sum(p.numel() for p in tiny.model.parameters())
    assert 7_000_000 < n < 8_000_000
    assert not any(p.requires_grad for p in tiny.parameters()) and not tiny.model.training
    torch.testing.assert_close(tiny.mean.flatten(), torch.tensor(open_clip.OPENAI_DATASET_MEAN))


def test_tokenizer_truncation_keeps_eot(tiny: ClipModel) -> None:
    tokens = tiny.tokenize([LONG, "red star"])
    assert tokens.shape == (2, 24)
    assert tokens[0, -1].item() == EOT and tokens[0].argmax().item() == 23
    assert tokens[1].argmax().item() == 3 and tokens[1, 3].item() == EOT  # SOT red star EOT
    emb = tiny.encode_text([LONG])
    assert torch.isfinite(emb).all()


def test_encode_text_normalised_and_cached(
    tiny: ClipModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    tiny.clear_cache()
    a = tiny.encode_text(["red circle", "blue star", "red circle"])
    assert a.shape == (3, 64)
    torch.testing.assert_close(a.norm(dim=-1), torch.ones(3))
    assert torch.equal(a[0], a[2])
    calls = []
    real = tiny.model.encode_text
    monkeypatch.setattr(tiny.model, "encode_text", lambda t: calls.append(t) or real(t))
    b = tiny.encode_text(["blue star", "red circle"])
    assert calls == [] and torch.equal(b[0], a[1]) and torch.equal(b[1], a[0])
    tiny.encode_text("green square")
    assert len(calls) == 1 and calls[0].shape == (1, 24)


def test_text_cache_is_lru() -> None:
    torch.manual_seed(0)
    clip = create_clip(config=TINY_CLIP_CONFIG, text_cache_size=2)
    clip.encode_text(["a", "b"])
    clip.encode_text(["a"])  # a is now most recent
    clip.encode_text(["c"])  # evicts b
    assert list(clip._text_cache) == ["a", "c"]


def test_encode_prompt_averages_templates(tiny: ClipModel) -> None:
    tpl = ["a photo of a {}.", "a drawing of a {}."]
    e = tiny.encode_prompt("red star", tpl)
    manual = F.normalize(tiny.encode_text([t.format("red star") for t in tpl]).mean(0), dim=-1)
    torch.testing.assert_close(e, manual)
    assert tiny.encode_prompt(["red star", "blue circle"], tpl).shape == (2, 64)
    with pytest.raises(ValueError, match="contain"):
        tiny.encode_prompt("x", ["no placeholder"])


def test_encode_image_gradients_flow(tiny: ClipModel) -> None:
    x = _img().requires_grad_(True)
    e = tiny.encode_image(x)
    assert e.shape == (2, 64)
    torch.testing.assert_close(e.norm(dim=-1), torch.ones(2))
    target = tiny.encode_text(["a red star"])
    (1 - (e @ target.T)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in tiny.model.parameters())
    # A non-square, larger image is resized (antialiased) and cropped differentiably.
    y = (torch.rand(1, 3, 96, 80) * 2 - 1).requires_grad_(True)
    tiny.encode_image(y).sum().backward()
    assert y.grad is not None and y.grad.abs().sum() > 0
    assert not tiny.encode_image(x, differentiable=False).requires_grad


def test_preprocess_maps_range_to_clip_normalisation(tiny: ClipModel) -> None:
    x = torch.full((1, 3, 64, 64), -1.0)  # black in [-1, 1]
    p = tiny.preprocess(x)
    expected = (0 - tiny.mean) / tiny.std
    torch.testing.assert_close(p[0, :, 0, 0], expected.flatten())
    assert tiny.preprocess(torch.zeros(1, 3, 128, 128)).shape == (1, 3, 64, 64)


def test_weights_roundtrip_fp16_wrappers_and_errors(tiny: ClipModel, tmp_path: Path) -> None:
    img, txt = _img(), ["a red star"]
    ref_i, ref_t = tiny.encode_image(img, differentiable=False), tiny.encode_text(txt)

    path = tmp_path / "tiny.pt"
    save_clip(tiny, path)
    torch.manual_seed(1)
    other = create_clip(config=TINY_CLIP_CONFIG, weights=path)
    assert torch.equal(other.encode_image(img, differentiable=False), ref_i)
    assert torch.equal(other.encode_text(txt), ref_t)

    half = tmp_path / "tiny16.pt"
    save_clip(tiny, half, half=True)
    sd16 = torch.load(half, weights_only=True)
    assert sd16["token_embedding.weight"].dtype == torch.float16
    wrapped = tmp_path / "wrapped.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd16.items()}}, wrapped)
    loaded = create_clip(config=TINY_CLIP_CONFIG, weights=wrapped)
    assert loaded.dtype == torch.float32
    torch.testing.assert_close(loaded.encode_image(img), ref_i, atol=2e-2, rtol=0)

    bad = dict(torch.load(path, weights_only=True))
    bad["visual.projx"] = bad.pop("visual.proj")
    torch.save(bad, tmp_path / "bad.pt")
    with pytest.raises(
        ValueError, match=r"bad\.pt.*missing: visual\.proj.*unexpected: visual\.projx"
    ):
        create_clip(config=TINY_CLIP_CONFIG, weights=tmp_path / "bad.pt")
    torch.save({"state_dict": {}, "args": argparse.Namespace(a=1)}, tmp_path / "pickled.pt")
    with pytest.raises(ValueError, match="weights_only"):
        create_clip(config=TINY_CLIP_CONFIG, weights=tmp_path / "pickled.pt")
    with pytest.raises(FileNotFoundError, match="never downloaded"):
        create_clip("ViT-B-32", weights="openai")
    with pytest.raises(ValueError, match="hf-hub"):
        create_clip("hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K")
    with pytest.raises(ValueError, match="unknown open_clip model"):
        create_clip("ViT-Nope-1")


def test_local_dir(tiny: ClipModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    img = _img()
    ref = tiny.encode_image(img, differentiable=False)
    folder = save_clip_local_dir(tiny, tmp_path / "tiny_clip")
    cfg = json.loads((folder / "open_clip_config.json").read_text())
    assert cfg["model_cfg"] == TINY_CLIP_CONFIG
    clip = create_clip(f"local-dir:{folder}")
    assert clip.context_length == 24 and clip.tokenize(["x"]).shape == (1, 24)
    assert torch.equal(clip.encode_image(img, differentiable=False), ref)
    assert torch.equal(clip.encode_text(["a red star"]), tiny.encode_text(["a red star"]))

    st_folder = tmp_path / "st_only"
    if clip_mod._safetensors_available():
        save_clip_local_dir(tiny, st_folder, safetensors=True)
        assert not (st_folder / "open_clip_pytorch_model.bin").exists()
        clip = create_clip(f"local-dir:{st_folder}")
        assert torch.equal(clip.encode_image(img, differentiable=False), ref)
    else:  # still build a safetensors-only folder for the error below
        st_folder.mkdir()
        (st_folder / "open_clip_config.json").write_text(json.dumps(cfg))
        (st_folder / "open_clip_pytorch_model.safetensors").write_bytes(b"")
    monkeypatch.setattr(clip_mod, "_safetensors_available", lambda: False)
    with pytest.raises(ImportError, match="safetensors"):
        create_clip(f"local-dir:{st_folder}")
    with pytest.raises(FileNotFoundError, match=r"open_clip_config\.json"):
        create_clip(f"local-dir:{tmp_path}")


@pytest.mark.slow
def test_vit_b32_named_config_offline(tmp_path: Path) -> None:
    torch.manual_seed(0)
    clip = create_clip("ViT-B-32")
    assert (clip.image_size, clip.embed_dim, clip.context_length) == (224, 512, 77)
    path = tmp_path / "vit_b32.bin"
    save_clip(clip, path)
    img = _img(1, 64)  # upsampled to 224 inside encode_image
    ref = clip.encode_image(img, differentiable=False)
    del clip
    torch.manual_seed(1)
    loaded = create_clip("ViT-B-32", weights=path)
    e = loaded.encode_image(img, differentiable=False)
    t = loaded.encode_text(["a photo of a cat", LONG])
    assert e.shape == (1, 512) and t.shape == (2, 512)
    torch.testing.assert_close(e.norm(dim=-1), torch.ones(1))
    torch.testing.assert_close(t.norm(dim=-1), torch.ones(2))
    assert torch.equal(e, ref)
