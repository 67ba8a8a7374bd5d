"""The pack's inversion: the e4e encoder, then Adam steps on W+ (engine.methods.inversion)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from engine.methods.inversion import Refinement, invert, reconstruction_loss, refine_latents
from engine.packs import PackError, PackRegistry
from tests.support.packs import make_pack


@pytest.fixture(scope="module")
def pack(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    folder = tmp_path_factory.mktemp("packs")
    make_pack(folder / "tiny", refine_steps=5)
    return PackRegistry([folder]).get("tiny")


def _target(pack) -> torch.Tensor:  # type: ignore[no-untyped-def]
    gen = pack.get("generator")
    with torch.no_grad():
        w = gen.mapping(torch.randn(2, gen.style_dim, generator=torch.Generator().manual_seed(1)))
        return gen.synthesis(w, noise="fixed")


def test_the_manifest_names_the_refinement(pack) -> None:  # type: ignore[no-untyped-def]
    assert Refinement.of_pack(pack) == Refinement(steps=5, lr=0.02)
    assert Refinement.of_pack(object()) == Refinement(steps=0)


def test_refinement_lowers_the_reconstruction_loss(pack) -> None:  # type: ignore[no-untyped-def]
    gen, enc = pack.get("generator"), pack.get("encoder")
    x = _target(pack)
    encoded = invert(gen, enc, x)
    refined = invert(gen, enc, x, Refinement(steps=30, lr=0.05))
    before = reconstruction_loss(encoded.image, x)
    after = reconstruction_loss(refined.image, x)
    assert (after < before).all()
    assert torch.allclose(refined.image, gen.synthesis_from_styles(refined.styles,
                                                                   noise="fixed"))


def test_each_image_refines_on_its_own(pack) -> None:  # type: ignore[no-untyped-def]
    gen, enc = pack.get("generator"), pack.get("encoder")
    x = _target(pack)
    with torch.no_grad():
        w0 = enc(x) + enc.latent_avg
    both = refine_latents(gen, x, w0, Refinement(steps=4))
    first = refine_latents(gen, x[:1], w0[:1], Refinement(steps=4))
    assert torch.allclose(both[:1], first, atol=1e-5)
    assert not torch.equal(both, w0)


def test_no_steps_is_the_encoder_progress_and_cancel_per_step(pack) -> None:  # type: ignore[no-untyped-def]
    gen, enc = pack.get("generator"), pack.get("encoder")
    x = _target(pack)[:1]
    with torch.no_grad():
        w0 = enc(x) + enc.latent_avg
    assert torch.equal(refine_latents(gen, x, w0, Refinement(steps=0)), w0)
    seen: list[tuple[int, int]] = []
    refine_latents(gen, x, w0, Refinement(steps=3), on_step=lambda d, n, y: seen.append((d, n)))
    assert seen == [(1, 3), (2, 3), (3, 3)]

    class Stop(Exception):
        pass

    calls = []

    def check() -> None:
        calls.append(1)
        if len(calls) == 2:
            raise Stop

    with pytest.raises(Stop):
        refine_latents(gen, x, w0, Refinement(steps=10), check=check)
    assert len(calls) == 2


@pytest.mark.parametrize("bad", [{"refine_steps": -1}, {"refine_steps": 5000},
                                 {"refine_lr": 0}, {"refine_steps": "many"}, [3]])
def test_a_bad_inversion_entry_is_a_pack_error(tmp_path: Path, bad: object) -> None:
    folder = make_pack(tmp_path / "tiny")
    manifest = json.loads((folder / "pack.json").read_text())
    manifest["inversion"] = bad
    (folder / "pack.json").write_text(json.dumps(manifest))
    registry = PackRegistry([tmp_path])
    with pytest.raises(PackError, match="inversion"):
        registry.get("tiny")
