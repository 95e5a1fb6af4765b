"""A model file that cannot be loaded (missing, truncated, not ONNX) is an error naming the path."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from edge.errors import ModelLoadError
from edge.model import contract as c
from edge.model.onnx_file import read_metadata_props
from edge.model.session import open_session
from tests.tiny_models import CPU_ONLY, save_model


def test_truncated_file_names_the_path(tmp_path: Path) -> None:
    whole = save_model(tmp_path).read_bytes()
    path = tmp_path / "cut.onnx"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ModelLoadError, match="truncated") as caught:
        open_session(path, CPU_ONLY)
    assert str(path) in str(caught.value) and caught.value.fix


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"nowhere\.onnx does not exist"):
        open_session(tmp_path / "nowhere.onnx", CPU_ONLY)


def test_text_file_is_not_an_onnx_model(tmp_path: Path) -> None:
    path = tmp_path / "notes.onnx"
    path.write_text("hello world, this is not a model\n")
    with pytest.raises(ModelLoadError, match="not an ONNX model") as caught:
        open_session(path, CPU_ONLY)
    assert str(path) in str(caught.value)


def test_read_metadata_props_matches_onnx(tmp_path: Path) -> None:
    path = save_model(tmp_path)
    expected = {prop.key: prop.value for prop in onnx.load(str(path)).metadata_props}
    assert read_metadata_props(path) == expected
    assert expected[c.META_MODEL_ID] == "tiny-ü-test"
