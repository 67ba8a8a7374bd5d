"""The `wordbrush` command line against a live engine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.cli import main
from tests.support.engine import EngineProcess


def _scene(tmp: Path) -> tuple[Path, Path, np.ndarray, np.ndarray]:
    # a smooth picture: the 32-px test model's round trip is then nearly exact inside
    pixels = np.zeros((48, 64, 4), np.uint8)
    pixels[...] = (100, 150, 200, 255)
    pixels[:, :8] = (10, 20, 30, 255)  # outside the selection, must stay untouched
    mask = np.zeros((48, 64), np.uint8)
    mask[10:30, 20:44] = 255
    mask[10:30, 20] = 90
    image_path, mask_path = tmp / "in.png", tmp / "mask.png"
    Image.fromarray(pixels, "RGBA").save(image_path)
    Image.fromarray(mask, "L").save(mask_path)
    return image_path, mask_path, pixels, mask


def test_edit_writes_composite_and_patch(engine: EngineProcess, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    image, mask_path, pixels, mask = _scene(tmp_path)
    out, patch = tmp_path / "out.png", tmp_path / "patch.png"
    code = main(["edit", str(image), "--mask", str(mask_path), "--prompt", "inverted",
                 "--method", "test-invert", "--seed", "3", "--endpoint", engine.endpoint,
                 "-o", str(out), "--patch-out", str(patch)])
    assert code == 0, capsys.readouterr().err
    result = np.asarray(Image.open(out))
    assert result.shape == pixels.shape
    outside = mask == 0
    assert np.array_equal(result[outside], pixels[outside])  # bit-identical
    inside = mask == 255
    assert np.abs(result[inside][:, :3].astype(int) - (255 - pixels[inside][:, :3])).max() <= 3
    with Image.open(patch) as p:
        assert p.info["wordbrush:offset"] == "20,10"
        assert p.size == (24, 20)


def test_edit_variations_write_numbered_files(engine: EngineProcess, tmp_path: Path) -> None:
    image, mask_path, _, _ = _scene(tmp_path)
    out = tmp_path / "v.png"
    assert main(["edit", str(image), "--mask", str(mask_path), "--prompt", "x", "--method",
                 "test-invert", "--variations", "2", "--param", "jitter=0.5",
                 "--endpoint", engine.endpoint, "-o", str(out)]) == 0
    assert out.exists() and (tmp_path / "v-2.png").exists()


def test_edit_params_are_read_by_their_kind_pipeline_ones_included(
        engine: EngineProcess, tmp_path: Path) -> None:
    """``--param`` goes through the one typed reader (``parse_assignments``) against the
    welcome's specs: the method's own and the region pipeline's (paste, feather)."""
    image, mask_path, _, _ = _scene(tmp_path)
    out = tmp_path / "p.png"
    assert main(["edit", str(image), "--mask", str(mask_path), "--prompt", "x", "--method",
                 "test-invert", "--param", "paste=delta", "--param", "feather=1",
                 "--param", "steps=2", "--endpoint", engine.endpoint, "-o", str(out)]) == 0
    assert out.exists()


@pytest.mark.parametrize(
    ("extra", "text"),
    [
        (["--param", "steps=0"], "smallest allowed"),
        (["--param", "steps=many"], "must be an integer"),
        (["--param", "nosuch=1"], "unknown parameter 'nosuch'"),
        (["--method", "missing", "--param", "steps=3"], "no method 'missing'"),
        (["--method", "missing"], "unknown method"),
        (["--strength", "7"], "largest allowed"),
    ],
)
def test_edit_errors_are_one_line(engine: EngineProcess, tmp_path: Path, extra: list[str],
                                  text: str, capsys: pytest.CaptureFixture[str]) -> None:
    image, mask_path, _, _ = _scene(tmp_path)
    args = ["edit", str(image), "--mask", str(mask_path), "--prompt", "x",
            "--endpoint", engine.endpoint, "-o", str(tmp_path / "o.png")]
    if "--method" not in extra:
        args += ["--method", "test-invert"]
    assert main(args + extra) != 0
    err = capsys.readouterr().err.strip()
    assert text in err and len(err.splitlines()) == 1


def test_mask_size_mismatch(engine: EngineProcess, tmp_path: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    image, _, _, _ = _scene(tmp_path)
    small = tmp_path / "small.png"
    Image.new("L", (5, 5), 255).save(small)
    assert main(["edit", str(image), "--mask", str(small), "--prompt", "x",
                 "--endpoint", engine.endpoint, "-o", str(tmp_path / "o.png")]) == 1
    assert "must match" in capsys.readouterr().err


def test_empty_mask(engine: EngineProcess, tmp_path: Path,
                    capsys: pytest.CaptureFixture[str]) -> None:
    image, _, _, _ = _scene(tmp_path)
    empty = tmp_path / "empty.png"
    Image.new("L", (64, 48), 0).save(empty)
    assert main(["edit", str(image), "--mask", str(empty), "--prompt", "x",
                 "--endpoint", engine.endpoint, "-o", str(tmp_path / "o.png")]) == 1
    assert "selects nothing" in capsys.readouterr().err


def test_info(engine: EngineProcess, capsys: pytest.CaptureFixture[str]) -> None:
    from protocol import shm

    assert main(["info", "--endpoint", engine.endpoint]) == 0
    out = capsys.readouterr().out
    assert "test-invert" in out and "test-pack" in out
    assert "runs test-invert by default" in out  # what a request naming no method runs
    assert "every method also takes: paste=auto (auto|render|delta|colour), feather=0.0 " \
           "(0..64), keep_background=True" in out
    assert "steps=" in out and "(1..1000)" in out  # ranges, as the errors would give them
    expected = ("large buffers through shared memory" if shm.supported()
                else "every buffer as a frame")
    assert f"transport: {expected}" in out


def test_info_without_engine_fails_clearly(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "--endpoint", f"ipc://{tmp_path}/none.sock", "--timeout", "0.5"]) != 0
    err = capsys.readouterr().err
    assert "no engine answered" in err
    assert "[engine_unavailable]" in err and "[internal]" not in err  # not a crash


def test_serve_refuses_public_tcp_without_curve(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--endpoint", "tcp://0.0.0.0:47999", "--device", "cpu"]) != 0
    assert "without encryption" in capsys.readouterr().err


def test_an_engine_lost_mid_call_is_its_error_not_a_second_engine(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The running engine goes away during `wordbrush edit`: the error reaches the user,
    no private engine is started, and the client says `bye` on every way out."""
    from engine import cli
    from protocol import client as client_module
    from protocol.errors import EngineUnavailable

    closed: list[bool] = []

    class Client:
        def __init__(self, *args: object, **kwargs: object) -> None:
            pass

        def connect(self) -> None:
            return None

        def close(self) -> None:
            closed.append(True)

    def no_private_engine(*args: object, **kwargs: object) -> None:
        raise AssertionError("a second engine was started")

    monkeypatch.setattr(client_module, "EngineClient", Client)
    monkeypatch.setattr(cli, "private_engine", no_private_engine)
    with pytest.raises(EngineUnavailable, match="lost"), cli.engine_for_call(None) as (_, where):
        assert where == "running engine"
        raise EngineUnavailable("lost the connection to the engine")
    with cli.engine_for_call(None):
        pass
    assert closed == [True, True]


def test_mistakes_on_the_command_line_are_one_line(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """An endpoint without a port, a port in use, an unknown device, a framing that is
    not one: a sentence each, no traceback."""
    import socket

    assert main(["info", "--endpoint", "tcp://127.0.0.1"]) == 2
    assert "needs a host and a port" in capsys.readouterr().err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", "--endpoint", f"tcp://127.0.0.1:{port}", "--device", "cpu",
                     "--pack-dir", str(tmp_path)]) != 0
    assert "already listening at" in capsys.readouterr().err
    assert main(["train", "clipinverter", "--device", "nonsense"]) == 2
    assert "--device nonsense" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["pack", "create", "p", "--generator", "g.pt", "--resolution", "32",
              "--framing", "box:2"])
    assert "box:F with F in (0, 1]" in capsys.readouterr().err


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA-opaque", "RGBA-alpha", "LA-alpha"])
def test_masks_are_read_by_grey_or_by_transparency(tmp_path: Path, mode: str) -> None:
    """White selects in a grey or colour mask, with or without an opaque alpha channel;
    a mask saved as transparency selects where it is opaque."""
    from engine.cli import _load_mask

    grey = np.zeros((6, 8), np.uint8)
    grey[2:4, 3:6] = 255
    grey[2, 3] = 100
    if mode == "L":
        image = Image.fromarray(grey, "L")
    elif mode == "RGB":
        image = Image.fromarray(np.stack([grey] * 3, -1), "RGB")
    elif mode == "RGBA-opaque":
        image = Image.fromarray(np.dstack([grey, grey, grey, np.full_like(grey, 255)]), "RGBA")
    elif mode == "RGBA-alpha":
        image = Image.fromarray(np.dstack([np.zeros((6, 8, 3), np.uint8), grey]), "RGBA")
    else:
        image = Image.fromarray(np.dstack([np.zeros_like(grey), grey]), "LA")
    image.save(tmp_path / "mask.png")
    assert _load_mask(tmp_path / "mask.png", (8, 6)) == grey.tobytes()


def test_params_are_read_against_the_method_the_chosen_pack_runs() -> None:
    """`wordbrush edit --pack ffhq --param steps=80`: an FFHQ pack that prefers
    paint-by-word takes `steps`, though the default pack's CLIPInverter does not."""
    from engine.cli import CliError, read_request_params
    from protocol.events import Welcome
    from protocol.framing import Message

    def method(mid: str, *params: dict) -> dict:
        return {"id": mid, "title": mid, "params": list(params)}

    steps = {"name": "steps", "kind": "int", "default": 40, "min": 1, "max": 1000}
    strength = {"name": "strength", "kind": "float", "default": 1.0, "min": 0, "max": 2}
    welcome = Welcome.from_message(Message("welcome", {
        "protocol": 1, "default_method": "clipinverter", "default_pack": "demo",
        "methods": [method("clipinverter", strength), method("paint-by-word", steps)],
        "packs": [{"name": "demo", "default_method": "clipinverter"},
                  {"name": "ffhq", "default_method": "paint-by-word"}]}))
    assert read_request_params(["steps=80"], welcome, None, "ffhq") == {"steps": 80}
    with pytest.raises(CliError, match="unknown parameter 'steps'"):
        read_request_params(["steps=80"], welcome, None, None)
    assert read_request_params(["steps=80"], welcome, "paint-by-word") == {"steps": 80}


def test_edit_without_an_output_is_refused_before_anything_runs(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image, mask, _, _ = _scene(tmp_path)
    assert main(["edit", str(image), "--mask", str(mask), "--prompt", "x",
                 "--endpoint", f"ipc://{tmp_path}/nobody.sock"]) == 1
    err = capsys.readouterr().err
    assert "-o OUT.png" in err and "no engine" not in err  # refused before connecting


def test_edit_a_batch_through_one_connection(engine: EngineProcess, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """A folder of images, each with its NAME-mask.png: every one is edited and written
    to the output folder; one without a mask and one that is not an image are listed as
    failed at the end (exit 1), the others still done."""
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a", "b", "c"):
        sub = tmp_path / name
        sub.mkdir()
        image, mask, _, _ = _scene(sub)
        image.rename(folder / f"{name}.png")
        mask.rename(folder / f"{name}-mask.png")
    (folder / "c-mask.png").unlink()  # c has no mask
    (folder / "d.png").write_bytes(b"not a png")
    (folder / "d-mask.png").write_bytes((folder / "a-mask.png").read_bytes())
    out = tmp_path / "out"
    code = main(["edit", str(folder), "--prompt", "inverted", "--method", "test-invert",
                 "--endpoint", engine.endpoint, "-o", str(out)])
    captured = capsys.readouterr()
    assert code == 1
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"]
    assert "2 of 4 images edited" in captured.out
    failed = [line for line in captured.err.splitlines() if line.startswith("failed:")]
    assert len(failed) == 2 and any("c.png" in f and "no mask" in f for f in failed)
    assert any("d.png" in f and "cannot read image" in f for f in failed)
    # one mask for all, and named files: the same edit
    (folder / "d.png").unlink()
    (folder / "d-mask.png").unlink()
    code = main(["edit", str(folder / "a.png"), str(folder / "b.png"), "--mask",
                 str(folder / "a-mask.png"), "--prompt", "inverted", "--method", "test-invert",
                 "--endpoint", engine.endpoint, "-o", str(tmp_path / "out2")])
    assert code == 0 and "2 of 2 images edited" in capsys.readouterr().out
