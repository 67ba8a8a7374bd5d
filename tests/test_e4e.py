"""e4e encoder: official key layout, strict loading, style wiring, checkpoint safety."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch
from torch import nn

from engine.models.e4e import (
    E4EConfig,
    Encoder4Editing,
    decoder_state_dict,
    load_e4e,
    preprocess,
    save_e4e,
)

SMALL = E4EConfig.small()  # 64 px input, 10 styles of 128


@pytest.fixture(scope="module")
def small() -> Encoder4Editing:
    torch.manual_seed(0)
    enc = Encoder4Editing(SMALL)
    # Non-trivial BatchNorm statistics so eval-mode loads are actually checked.
    for m in enc.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.num_batches_tracked.fill_(7)
    return enc.eval()


def _x(size: int = 64, batch: int = 2) -> torch.Tensor:
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(1)) * 2 - 1


# -- official layout ---------------------------------------------------------------------
def test_official_key_layout() -> None:
    with torch.device("meta"):  # no allocation: shapes and names only
        enc = Encoder4Editing()
    sd = enc.state_dict()
    assert len(sd) == 621
    bn_buffers = [
        k for k in sd if k.endswith(("running_mean", "running_var", "num_batches_tracked"))
    ]
    assert len(bn_buffers) == 156
    assert sum(k.endswith("num_batches_tracked") for k in sd) == 52
    assert sum(p.numel() for p in enc.parameters()) == 267_136_704
    assert enc.config.tap_indices == (6, 20, 23)
    expected_shapes = {
        "input_layer.0.weight": (64, 3, 3, 3),
        "input_layer.1.running_var": (64,),
        "input_layer.2.weight": (64,),
        "body.3.shortcut_layer.0.weight": (128, 64, 1, 1),
        "body.3.shortcut_layer.1.weight": (128,),
        "body.23.res_layer.5.fc1.weight": (32, 512, 1, 1),
        "body.23.res_layer.5.fc2.weight": (512, 32, 1, 1),
        "styles.0.convs.6.weight": (512, 512, 3, 3),  # coarse: 4 convs (16 px)
        "styles.3.convs.8.weight": (512, 512, 3, 3),  # medium: 5 convs (32 px)
        "styles.17.convs.10.weight": (512, 512, 3, 3),  # fine: 6 convs (64 px)
        "styles.17.linear.weight": (512, 512),
        "styles.17.linear.bias": (512,),
        "latlayer1.weight": (512, 256, 1, 1),
        "latlayer2.weight": (512, 128, 1, 1),
    }
    for k, shape in expected_shapes.items():
        assert tuple(sd[k].shape) == shape, k
    assert "body.0.shortcut_layer.weight" not in sd  # 64->64 stride 2: a weightless max-pool
    assert "styles.0.convs.8.weight" not in sd and "styles.3.convs.10.weight" not in sd
    slopes = {m.negative_slope for m in enc.modules() if isinstance(m, nn.LeakyReLU)}
    assert slopes == {0.01}


@pytest.mark.slow
def test_official_full_size_save_load_forward(tmp_path: Path) -> None:
    torch.manual_seed(0)
    enc = Encoder4Editing().eval()
    latent_avg = torch.randn(18, 512)
    decoder = {"style.1.weight": torch.randn(512, 512), "input.input": torch.randn(1, 512, 4, 4)}
    opts = {"encoder_type": "Encoder4Editing", "stylegan_size": 1024, "lr": 1e-4, "x": None}
    path = tmp_path / "e4e_ffhq_encode.pt"
    ckpt = {
        "state_dict": {
            **{f"encoder.{k}": v for k, v in enc.state_dict().items()},
            **{f"decoder.{k}": v for k, v in decoder.items()},
        },
        "opts": opts,
        "latent_avg": latent_avg,
    }
    torch.save(ckpt, path)  # exactly the official layout, no wordbrush config in opts
    del ckpt

    loaded, lavg, lopts, dec = load_e4e(path, return_decoder=True)
    assert loaded.config == E4EConfig()
    assert lopts == opts
    assert torch.equal(lavg, latent_avg)
    assert set(dec) == {"decoder.style.1.weight", "decoder.input.input"}
    ref = enc.state_dict()
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, ref[k]), k
    del enc, ref
    with torch.no_grad():
        w = loaded(_x(256, 1))
    assert w.shape == (1, 18, 512) and torch.isfinite(w).all()


# -- small config: wiring ----------------------------------------------------------------
def test_small_config_split_and_size(small: Encoder4Editing) -> None:
    n = small.num_parameters()
    assert 1_000_000 <= n <= 4_000_000
    assert small.config.split == (3, 7)
    assert [small.config.style_spatial(i) for i in range(10)] == [4] * 3 + [8] * 4 + [16] * 3
    tiny = E4EConfig.small(widths=(16, 16, 32, 64), stem_width=16, style_width=32, style_dim=64)
    assert Encoder4Editing(tiny).num_parameters() < 1_000_000


def test_features_map2style_equals_forward(small: Encoder4Editing) -> None:
    x = _x()
    with torch.no_grad():
        c1, c2, c3 = small.features(x)
        assert c1.shape == (2, 48, 16, 16)
        assert c2.shape == (2, 96, 8, 8)
        assert c3.shape == (2, 128, 4, 4)
        w = small.map2style(c1, c2, c3)
        assert w.shape == (2, 10, 128)
        assert torch.equal(w, small(x))


def test_style_groups_read_the_right_features(small: Encoder4Editing) -> None:
    """c1 reaches only fine rows (7-9), c2 medium+fine (3-9), c3 everything."""
    with torch.no_grad():
        c1, c2, c3 = small.features(_x())
        w = small.map2style(c1, c2, c3)

        def changed(w2: torch.Tensor) -> list[int]:
            return [i for i in range(10) if not torch.allclose(w[:, i], w2[:, i])]

        assert changed(small.map2style(c1 + 1, c2, c3)) == [7, 8, 9]
        assert changed(small.map2style(c1, c2 + 1, c3)) == list(range(3, 10))
        assert changed(small.map2style(c1, c2, c3 + 1)) == list(range(10))


def test_w0_broadcast_plus_deltas_and_progressive_stage(small: Encoder4Editing) -> None:
    with torch.no_grad():
        feats = small.features(_x())
        w = small.map2style(*feats)
        w0 = small.styles[0](feats[2])
        assert torch.allclose(w[:, 0], w0)
        small.progressive_stage = 0  # e4e's WTraining: only the shared w
        try:
            w_stage0 = small.map2style(*feats)
            assert torch.equal(w_stage0, w0[:, None].expand(-1, 10, -1))
            small.progressive_stage = 4
            w4 = small.map2style(*feats)
            assert torch.allclose(w4[:, :5], w[:, :5])
            assert torch.equal(w4[:, 5:], w0[:, None].expand(-1, 5, -1))
        finally:
            small.progressive_stage = None


def test_any_square_size_is_brought_to_the_input_size(small: Encoder4Editing) -> None:
    """A frame at the generator's size (not the encoder's) is resized, as CLIP's
    preprocessing does: the same as resizing it first; a non-square one is refused."""
    big = _x(96)
    fitted = torch.nn.functional.interpolate(big, size=(64, 64), mode="bilinear",
                                             align_corners=False, antialias=True)
    with torch.no_grad():
        assert torch.allclose(small(big), small(fitted), atol=1e-6)
    with pytest.raises(ValueError, match="square"):
        small(torch.rand(1, 3, 96, 80))
    x = preprocess(torch.rand(1, 3, 96, 80), size=64)
    assert x.shape == (1, 3, 64, 64) and x.min() >= -1 and x.max() <= 1


# -- checkpoints -------------------------------------------------------------------------
def test_small_roundtrip_config_from_opts(small: Encoder4Editing, tmp_path: Path) -> None:
    path = tmp_path / "small.pt"
    dec = {"decoder.conv1.conv.weight": torch.randn(1, 4, 4, 3, 3)}
    save_e4e(small, path, torch.randn(128), {"dataset": "shapes"}, dec)
    enc, lavg, opts, dec2 = load_e4e(path, return_decoder=True)
    assert enc.config == SMALL and not enc.training
    assert lavg.shape == (10, 128) and torch.equal(lavg[0], lavg[9])  # [dim] is repeated
    assert opts["dataset"] == "shapes"
    assert torch.equal(dec2["decoder.conv1.conv.weight"], dec["decoder.conv1.conv.weight"])
    assert set(decoder_state_dict(path, prefixed=False)) == {"conv1.conv.weight"}
    with torch.no_grad():
        assert torch.equal(enc(_x()), small(_x()))
    # Legacy (pre-zip) serialisation cannot be memory-mapped; the loader falls back.
    legacy = tmp_path / "legacy.pt"
    torch.save(torch.load(path, weights_only=True), legacy, _use_new_zipfile_serialization=False)
    assert load_e4e(legacy)[0].config == SMALL


def test_fp16_checkpoint_loads_into_fp32(small: Encoder4Editing, tmp_path: Path) -> None:
    path = tmp_path / "half.pt"
    save_e4e(small, path, torch.randn(10, 128), {}, half=True)
    raw = torch.load(path, weights_only=True)
    assert raw["state_dict"]["encoder.styles.0.linear.weight"].dtype == torch.float16
    assert raw["state_dict"]["encoder.input_layer.1.num_batches_tracked"].dtype == torch.int64
    enc, lavg, _ = load_e4e(path)
    assert all(p.dtype == torch.float32 for p in enc.parameters())
    assert lavg.dtype == torch.float32
    w_ref = small.styles[0].linear.weight.detach().half().float()
    assert torch.equal(enc.styles[0].linear.weight, w_ref)
    with torch.no_grad():
        torch.testing.assert_close(enc(_x()), small(_x()), atol=0.05, rtol=0.05)


def test_mismatched_layout_names_file_and_keys(small: Encoder4Editing, tmp_path: Path) -> None:
    path = tmp_path / "renamed.pt"
    save_e4e(small, path, None, {})
    raw = torch.load(path, weights_only=True)
    sd = raw["state_dict"]
    sd["encoder.styles.0.lin.weight"] = sd.pop("encoder.styles.0.linear.weight")
    torch.save(raw, path)
    with pytest.raises(ValueError) as err:
        load_e4e(path)
    msg = str(err.value)
    assert "renamed.pt" in msg and "styles.0.linear.weight" in msg and "styles.0.lin.weight" in msg
    # A small checkpoint forced into the official architecture: shape mismatches are named.
    save_e4e(small, path, None, {})
    with pytest.raises(ValueError, match=r"shape.*input_layer"):
        load_e4e(path, config=E4EConfig())
    with pytest.raises(ValueError, match="not an e4e checkpoint"):
        load_e4e({"state_dict": {"decoder.x": torch.zeros(1)}})


def test_pickled_objects_are_refused(small: Encoder4Editing, tmp_path: Path) -> None:
    path = tmp_path / "namespace_opts.pt"
    sd = {f"encoder.{k}": v for k, v in small.state_dict().items()}
    torch.save({"state_dict": sd, "opts": argparse.Namespace(lr=1e-4)}, path)
    with pytest.raises(ValueError, match=r"namespace_opts\.pt.*weights_only"):
        load_e4e(path)
    with pytest.raises(ValueError, match="not a plain dict"):
        load_e4e({"state_dict": sd, "opts": argparse.Namespace(lr=1e-4)})
    with pytest.raises(ValueError, match="latent_avg has shape"):
        load_e4e({"state_dict": sd, "latent_avg": torch.zeros(18, 512)}, config=SMALL)
    with pytest.raises(ValueError, match="pass config="):
        load_e4e({"state_dict": sd})  # no recorded config: the official one does not fit
