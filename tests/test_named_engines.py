"""Named engines: the plug-ins keep a list (local, and remote ones by name), switching is
one choice, and install.py --endpoint adds one."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from protocol.engines import LOCAL, NamedEngine, add_engine, chosen_engine, engine_list

REPO = Path(__file__).resolve().parent.parent


def test_the_list_reads_names_and_older_settings() -> None:
    settings = {"engines": [{"name": "studio", "endpoint": "tcp://gpu:47615",
                             "server_key": "/k/server.key", "client_key": "/k/me.key_secret"},
                            {"name": "broken"}, "not a dict"],
                "endpoint": "tcp://old:47615", "engine": "studio"}
    names = [e.name for e in engine_list(settings)]
    assert names == [LOCAL, "studio", "old"]  # the older single endpoint, by its host
    assert chosen_engine(settings).endpoint == "tcp://gpu:47615"
    assert chosen_engine(settings, LOCAL).is_local
    assert chosen_engine({"endpoint": "tcp://old:47615"}).name == "old"
    assert chosen_engine({}).is_local
    with pytest.raises(ValueError, match=r"no engine named 'gone'.*local, studio, old"):
        chosen_engine(settings, "gone")
    added = add_engine(settings, NamedEngine("box", "tcp://box:47615"))
    assert added["engine"] == "box" and [e["name"] for e in added["engines"]] == \
        ["studio", "old", "box"]
    with pytest.raises(ValueError):
        add_engine(settings, NamedEngine(LOCAL, "tcp://x:1"))


def test_krita_switches_engines_with_one_choice(tmp_path: Path) -> None:
    sys.path.insert(0, str(REPO / "plugins" / "krita"))
    try:
        from wordbrush.settings import Settings
    finally:
        sys.path.remove(str(REPO / "plugins" / "krita"))
    settings = Settings(engines=[{"name": "studio", "endpoint": "tcp://gpu:47615",
                                  "server_key": "s", "client_key": "c"}])
    assert settings.current().is_local
    settings.choose("studio")
    assert settings.current() == NamedEngine("studio", "tcp://gpu:47615", "s", "c")
    settings.save(tmp_path / "wordbrush.json")
    assert Settings.load(tmp_path / "wordbrush.json").current().name == "studio"
    settings.choose(LOCAL)
    assert settings.current().is_local and settings.engine == ""
    # an older file's single endpoint is one of the engines, and stays one once chosen
    old = Settings(endpoint="tcp://old:47615")
    assert old.current().name == "old"
    old.choose(LOCAL)  # switching away keeps it among the named ones
    assert [e.name for e in old.known_engines()] == [LOCAL, "old"] and old.current().is_local
    old.choose("old")
    assert old.engines[0]["endpoint"] == "tcp://old:47615" and old.current().name == "old"


def test_gimp_takes_a_named_engine() -> None:
    sys.path.insert(0, str(REPO / "plugins" / "gimp" / "wordbrush"))
    try:
        from wordbrush_core import EditOptions, PluginError
    finally:
        sys.path.remove(str(REPO / "plugins" / "gimp" / "wordbrush"))
    settings = {"engines": [{"name": "studio", "endpoint": "tcp://gpu:47615",
                             "server_key": "s", "client_key": "c"}], "engine": "studio"}
    chosen = EditOptions("a star").with_settings(settings)
    assert (chosen.endpoint, chosen.server_key) == ("tcp://gpu:47615", "s")
    local = EditOptions("a star", engine=LOCAL).with_settings(settings)
    assert local.endpoint == ""
    given = EditOptions("a star", endpoint="ipc:///x").with_settings(settings)
    assert given.endpoint == "ipc:///x" and given.server_key == ""
    with pytest.raises(PluginError, match="no engine named"):
        EditOptions("a star", engine="gone").with_settings(settings)


def test_install_endpoint_adds_a_named_engine(tmp_path: Path) -> None:
    sys.path.insert(0, str(REPO))
    import install

    settings = install.plugin_settings({"engines": [{"name": "studio",
                                                     "endpoint": "tcp://gpu:47615"}]},
                                       {"endpoint": "tcp://box:47615"})
    assert [e["name"] for e in settings["engines"]] == ["studio", "box"]
    assert settings["engine"] == "box" and chosen_engine(settings).endpoint == "tcp://box:47615"
    named = install.plugin_settings({}, {"endpoint": "tcp://box:47615", "name": "night"})
    assert named["engine"] == "night"
    (tmp_path / "vendor" / "zmq").mkdir(parents=True)
    (tmp_path / "wordbrush.json").write_text(json.dumps(settings))
    assert install.check_plugin("Krita: plugin", tmp_path, "python3 install.py")
