"""One config schema: the dataclasses, the modules that use its choices, endpoints and the docs follow it."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from edge.config import SECTION_TYPES, check_config_file
from edge.config_schema import FITS, KEYS, KEYS_BY_PATH, SOURCE_KINDS, children, reference_markdown
from edge.config_values import Endpoint, parse_endpoint
from tests.config_support import write_station

REPO = Path(__file__).resolve().parents[1]


def test_dataclass_fields_and_defaults_follow_the_schema() -> None:
    for section, cls in SECTION_TYPES.items():
        names = {key.name for key in children(section)}
        assert {field.name for field in dataclasses.fields(cls)} == names, section
        for field in dataclasses.fields(cls):
            path = f"{section}.{field.name}" if section else field.name
            if field.default is not dataclasses.MISSING:
                assert field.default == KEYS_BY_PATH[path].default, path


def test_schema_choices_match_the_modules_that_use_them() -> None:
    from edge.camera.factory import KIND_SETTINGS
    from edge.camera.generated import MAX_SIZE_PX, MIN_SIZE_PX
    from edge.model.preprocess import FITS as PREPROCESS_FITS

    assert FITS == PREPROCESS_FITS
    size = KEYS_BY_PATH["source.size_px"]
    assert (size.low, size.high) == (MIN_SIZE_PX, MAX_SIZE_PX)
    for kind in SOURCE_KINDS:  # every key a source takes is in the schema
        assert {f"source.{name}" for name in KIND_SETTINGS[kind]} <= set(KEYS_BY_PATH), kind


ENDPOINTS = [
    ("tcp://127.0.0.1:5556", Endpoint("tcp", "127.0.0.1", 5556)),
    ("tcp://*:5556", Endpoint("tcp", "*", 5556)),
    ("tcp://127.0.0.1:*", Endpoint("tcp", "127.0.0.1", None)),
    ("tcp://[::1]:80", Endpoint("tcp", "[::1]", 80)),
    ("tcp://eth0:5556", Endpoint("tcp", "eth0", 5556)),
    ("ipc:///run/inp-edge/s1.pub", Endpoint("ipc", "/run/inp-edge/s1.pub")),
    ("inproc://verdicts", Endpoint("inproc", "verdicts")),
    ("tcp://127.0.0.1:0", None),
    ("tcp://127.0.0.1:65536", None),
    ("tcp://127.0.0.1", None),
    ("tcp://:5556", None),
    ("udp://127.0.0.1:5556", None),
    ("ipc://", None),
    ("127.0.0.1:5556", None),
]


@pytest.mark.parametrize(("text", "expected"), ENDPOINTS)
def test_parse_endpoint(text: str, expected: Endpoint | None) -> None:
    assert parse_endpoint(text) == expected


def test_docs_reference_table_is_in_sync_with_the_schema() -> None:
    doc = (REPO / "docs" / "config.md").read_text(encoding="utf-8")
    assert reference_markdown() in doc, "regenerate the table: inp-edge check-config --reference"


def test_docs_example_is_a_valid_complete_config(tmp_path: Path) -> None:
    doc = (REPO / "docs" / "config.md").read_text(encoding="utf-8")
    example = re.search(r"```yaml\n(.*?)```", doc, re.S)
    assert example is not None
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "washer-int8.onnx").write_bytes(b"onnx")
    config, issues = check_config_file(write_station(tmp_path, example.group(1), model=False))
    assert issues == [] and config is not None
    without_comments = re.sub(r"#.*", "", example.group(1))
    written_keys = set(re.findall(r"([a-z_]+):\s", without_comments))
    assert {key.name for key in KEYS} <= written_keys, "the example shows every key"
