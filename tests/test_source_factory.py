"""Every frame source's life cycle and name, and the factory that opens one by kind or from the config."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from edge.camera.factory import open_source, open_source_from_config
from edge.camera.frame import FrameSource
from edge.camera.generated import GeneratedLine
from edge.camera.replay import FolderReplay, VideoReplay
from edge.config import SourceConfig
from edge.errors import ConfigError, SourceError
from tests.source_support import flat_bgr, write_png, write_video


def test_source_life_cycle(tmp_path: Path) -> None:
    write_png(tmp_path / "a.png", flat_bgr(1))
    for source in [
        GeneratedLine(size_px=32),
        FolderReplay(tmp_path),
        VideoReplay(write_video(tmp_path / "v.avi", 2)),
    ]:
        assert isinstance(source, FrameSource)
        assert not source.connected()
        with source:
            assert source.connected()
        assert not source.connected()
        source.close()  # twice is harmless
        with pytest.raises(SourceError, match="not open"):
            source.grab(timeout_s=0.0)


def test_source_names_describe_them(tmp_path: Path) -> None:
    write_png(tmp_path / "good" / "a.png", flat_bgr(1))
    assert GeneratedLine(parts=5, size_px=64, rate_pps=2).name == (
        "generated washers 64px (5 parts, 2/20 defective, seed 0, 2 pps)"
    )
    assert (
        FolderReplay(tmp_path, loop=True).name == f"replay {tmp_path} (1 images, labels good, loop, unpaced)"
    )


def test_factory_opens_each_kind(tmp_path: Path) -> None:
    write_png(tmp_path / "a.png", flat_bgr(1))
    video = write_video(tmp_path / "clip.avi", 2)
    assert isinstance(open_source("generated", parts=2, size_px=32), GeneratedLine)
    assert isinstance(open_source("replay", path=str(tmp_path), loop=True), FolderReplay)
    assert isinstance(open_source("replay", path=video, rate_pps=5), VideoReplay)
    with pytest.raises(ConfigError, match="needs its settings"):
        open_source("genicam")


@pytest.mark.parametrize(
    ("kind", "settings", "error", "names"),
    [
        ("usb", {}, ConfigError, "usb"),
        ("generated", {"path": "x"}, ConfigError, "path"),
        ("replay", {}, ConfigError, "path"),
        ("replay", {"path": "{tmp}/nowhere"}, SourceError, "nowhere"),
        ("replay", {"path": "{tmp}/a.png"}, SourceError, "a.png"),
        ("replay", {"path": "{tmp}/notes.txt"}, SourceError, "notes.txt"),
    ],
)
def test_factory_refuses_what_it_cannot_open(
    tmp_path: Path, kind: str, settings: dict, error: type, names: str
) -> None:
    write_png(tmp_path / "a.png", flat_bgr(1))
    (tmp_path / "notes.txt").write_text("x")
    settings = {key: value.replace("{tmp}", str(tmp_path)) for key, value in settings.items()}
    with pytest.raises(error) as caught:
        open_source(kind, **settings)
    assert names in str(caught.value) and caught.value.fix


def test_factory_opens_from_a_config_value(tmp_path: Path) -> None:
    write_png(tmp_path / "a.png", flat_bgr(1))
    generated = open_source_from_config(SourceConfig(parts=4, size_px=32, seed=2))
    assert isinstance(generated, GeneratedLine) and (generated.parts, generated.seed) == (4, 2)
    replay = open_source_from_config(SourceConfig(kind="replay", path=tmp_path, loop=True))
    assert isinstance(replay, FolderReplay) and replay.loop
    with pytest.raises(ConfigError, match="needs its settings"):
        open_source_from_config(replace(SourceConfig(kind="genicam"), genicam=None))
