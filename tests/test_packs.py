"""Model packs: manifests, strict lazy loading, clear errors naming the file."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import torch

from engine.cli import main
from engine.packs import LoadedPack, Manifest, PackError, PackRegistry, create_pack
from tests.support.packs import make_pack


@pytest.fixture(scope="module")
def tiny_pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_pack(tmp_path_factory.mktemp("packs") / "tiny")


def test_components_load_strictly_and_lazily(tiny_pack: Path) -> None:
    pack = LoadedPack(Manifest.read(tiny_pack))
    assert pack.loaded() == []
    g = pack.generator
    assert pack.loaded() == ["generator"]
    assert g.latent_avg.shape == (32,) and "latent_avg" not in g.state_dict()
    assert not any(p.requires_grad for p in g.parameters())
    enc = pack.encoder
    assert enc.latent_avg.shape == (8, 32)
    w = enc(torch.zeros(1, 3, 32, 32)) + enc.latent_avg
    image = g.synthesis(w, noise="fixed")
    assert image.shape == (1, 3, 32, 32)
    emb = pack.clip.encode_text(["a red star"])
    assert emb.shape == (1, 32)
    assert pack.get("generator") is g  # stays loaded
    assert pack.framing.to_dict()["kind"] == "box"


def test_a_loading_component_does_not_block_the_pack_listing(tiny_pack: Path,
                                                             monkeypatch) -> None:
    """The engine's I/O thread lists loaded components for every hello and status while
    the worker may be loading one for seconds."""
    from engine import packs

    loading, release = threading.Event(), threading.Event()

    def slow(manifest: Manifest, device: object) -> str:
        loading.set()
        assert release.wait(10)
        return "loaded"

    monkeypatch.setitem(packs._loaders, "generator", slow)
    pack = LoadedPack(Manifest.read(tiny_pack))
    worker = threading.Thread(target=pack.get, args=("generator",))
    worker.start()
    assert loading.wait(10)
    listed: list = []
    reader = threading.Thread(target=lambda: listed.append(pack.loaded()))
    reader.start()
    reader.join(2)
    released_late = reader.is_alive()
    release.set()
    worker.join(10)
    reader.join(10)
    assert not released_late and listed == [[]]
    assert pack.loaded() == ["generator"] and pack.get("generator") == "loaded"


def test_registry_describes_packs_and_methods(tiny_pack: Path) -> None:
    registry = PackRegistry([tiny_pack.parent])
    info = registry.describe({"needs-all": ("generator", "encoder", "clip"),
                              "needs-judge": ("judge",)})[0]
    assert info["name"] == "tiny" and info["methods"] == ["needs-all"]
    assert info["vocabulary"] == {"color": ["red"]}
    assert registry.default == "tiny"


def _manifest_only_copy(pack: Path, tmp_path: Path, name: str) -> Path:
    """The pack's manifest under a new name, in a folder without its model files."""
    folder = tmp_path / name
    folder.mkdir()
    data = json.loads((pack / "pack.json").read_text())
    data["name"] = name
    (folder / "pack.json").write_text(json.dumps(data))
    return folder


def test_missing_file_is_named(tiny_pack: Path, tmp_path: Path) -> None:
    broken = _manifest_only_copy(tiny_pack, tmp_path, "broken")
    pack = LoadedPack(Manifest.read(broken))
    with pytest.raises(PackError, match=r"generator\.pt"):
        pack.get("generator")


def test_corrupt_file_is_named(tiny_pack: Path, tmp_path: Path) -> None:
    broken = _manifest_only_copy(tiny_pack, tmp_path, "corrupt")
    (broken / "encoder.pt").write_bytes(b"this is not a checkpoint")
    with pytest.raises(PackError, match="encoder"):
        LoadedPack(Manifest.read(broken)).get("encoder")


def test_pickled_code_is_refused(tmp_path: Path, tiny_pack: Path) -> None:
    import pickle

    class Evil:
        def __reduce__(self) -> tuple:
            return (print, ("pwned",))

    folder = _manifest_only_copy(tiny_pack, tmp_path, "evil")
    with open(folder / "generator.pt", "wb") as f:
        pickle.dump({"g_ema": Evil()}, f)
    with pytest.raises(PackError, match="generator"):
        LoadedPack(Manifest.read(folder)).get("generator")


@pytest.mark.parametrize(
    ("change", "text"),
    [({"resolution": "big"}, "resolution"), ({"name": None}, "name"),
     ({"framing": {"kind": "wobbly"}}, "framing"), ({"format": 9}, "format")],
)
def test_bad_manifests(tmp_path: Path, change: dict, text: str) -> None:
    data = {"format": 1, "name": "x", "resolution": 32}
    data.update(change)
    if data.get("name") is None:
        del data["name"]
    (tmp_path / "pack.json").write_text(json.dumps(data))
    with pytest.raises(PackError, match=text):
        Manifest.read(tmp_path)


def test_path_escape_is_refused(tmp_path: Path) -> None:
    (tmp_path / "pack.json").write_text(json.dumps(
        {"format": 1, "name": "x", "resolution": 32, "generator": {"file": "../../etc/passwd"}}))
    with pytest.raises(PackError, match="outside the pack"):
        Manifest.read(tmp_path).file("generator")


def test_broken_pack_listed_and_others_still_served(tiny_pack: Path, tmp_path: Path) -> None:
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "pack.json").write_text("{not json")
    registry = PackRegistry([tmp_path, tiny_pack.parent])
    infos = {i["name"]: i for i in registry.describe({})}
    assert "not a readable JSON" in infos["bad"]["error"]
    assert registry.get("tiny").generator is not None
    with pytest.raises(PackError, match="not a readable JSON"):
        registry.get("bad")


def test_pack_create_from_official_files(tiny_pack: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ffhq-like"
    code = main(["pack", "create", "mine", "--generator", str(tiny_pack / "generator.pt"),
                 "--encoder", str(tiny_pack / "encoder.pt"), "--resolution", "32",
                 "--clip-model", "ViT-B-32", "--random-clip", "--out", str(out), "--link"])
    assert code == 0, capsys.readouterr().err
    assert "random weights: for tests only" in capsys.readouterr().out
    manifest = Manifest.read(out)
    assert manifest.components() == ["generator", "encoder", "clip"]
    assert (out / "generator.pt").is_symlink()
    assert manifest.data["clip"] == {"model": "ViT-B-32", "random": True}
    assert manifest.data["sampling"] == {"truncation": 0.7}


def test_pack_create_wants_clip_weights(tiny_pack: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """A pack with an untrained CLIP edits towards nothing: refused unless asked for, and
    a manifest naming no CLIP file (and not saying it is random) does not load."""
    out = tmp_path / "no-clip"
    code = main(["pack", "create", "p", "--generator", str(tiny_pack / "generator.pt"),
                 "--resolution", "32", "--out", str(out)])
    assert code != 0 and "--clip-weights" in capsys.readouterr().err
    assert not out.exists()
    (tmp_path / "hand").mkdir()
    (tmp_path / "hand" / "pack.json").write_text(json.dumps(
        {"format": 1, "name": "hand", "resolution": 32, "clip": {"model": "ViT-B-32"}}))
    with pytest.raises(PackError, match="no CLIP weights file"):
        PackRegistry([tmp_path / "hand"]).get("hand").get("clip")


def test_pack_create_takes_clipinverter(tiny_pack: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """``--clipinverter FILE`` is verified against the pack's models: one that fits (the
    tiny encoder's levels, ViT-B-32's 512-wide embedding) is named in the manifest; one
    made for another generator is refused, leaving nothing behind."""
    from engine.models.clipinverter import (
        CLIPAdapter,
        CLIPRemapper,
        level_channels,
        save_clipinverter,
    )
    from engine.models.e4e import load_e4e

    encoder = load_e4e(tiny_pack / "encoder.pt")[0]
    adapter = CLIPAdapter(level_channels(encoder), 512)
    save_clipinverter(adapter, CLIPRemapper(6, 32, 512), tmp_path / "fits.pt")
    save_clipinverter(adapter, CLIPRemapper(8, 32, 512), tmp_path / "for-64px.pt")
    args = ["--generator", str(tiny_pack / "generator.pt"), "--encoder",
            str(tiny_pack / "encoder.pt"), "--resolution", "32", "--random-clip"]
    out = tmp_path / "other"
    code = main(["pack", "create", "p", *args, "--clipinverter", str(tmp_path / "for-64px.pt"),
                 "--out", str(out)])
    assert code != 0 and "CLIPInverter file does not fit" in capsys.readouterr().err
    assert not out.exists()
    out = tmp_path / "made"
    code = main(["pack", "create", "p", *args, "--clipinverter", str(tmp_path / "fits.pt"),
                 "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    assert Manifest.read(out).components() == ["generator", "encoder", "clip", "clipinverter"]


def test_pack_create_refuses_wrong_resolution(tiny_pack: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "wrong"
    code = main(["pack", "create", "w", "--generator", str(tiny_pack / "generator.pt"),
                 "--resolution", "1024", "--random-clip", "--out", str(out)])
    assert code != 0
    assert "generator" in capsys.readouterr().err
    assert not out.exists()
    # a manifest the pack reader refuses leaves nothing behind either
    code = main(["pack", "create", "w", "--generator", str(tiny_pack / "generator.pt"),
                 "--resolution", "3", "--random-clip", "--out", str(out)])
    assert code != 0 and "resolution" in capsys.readouterr().err
    assert not out.exists()


def test_create_pack_needs_existing_files(tmp_path: Path) -> None:
    with pytest.raises(PackError, match="does not exist"):
        create_pack(tmp_path / "p", name="p", generator=tmp_path / "nope.pt", resolution=32,
                    random_clip=True)
