"""Execution providers for the model session: which are used, their options, the engine cache folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.errors import ConfigError
from edge.model.session import CPU, CUDA, TENSORRT, default_cache_dir, provider_options, resolve_providers

ALL = (TENSORRT, CUDA, CPU)
CPU_ONLY_BUILD = ("AzureExecutionProvider", CPU)


@pytest.mark.parametrize(
    ("requested", "available", "expected"),
    [
        (None, ALL, list(ALL)),
        (["auto"], (CPU, CUDA), [CUDA, CPU]),
        ("auto", CPU_ONLY_BUILD, [CPU]),
        ([], (CUDA, CPU), [CUDA, CPU]),
        (["cuda", "cpu"], ALL, [CUDA, CPU]),
        (["CPU"], ALL, [CPU]),
        ("tensorrt,cuda", ALL, [TENSORRT, CUDA]),
        ([CUDA, "cuda", "cpu"], ALL, [CUDA, CPU]),
    ],
)
def test_resolve_providers(
    requested: list[str] | str | None, available: tuple[str, ...], expected: list[str]
) -> None:
    assert resolve_providers(requested, available) == expected


@pytest.mark.parametrize(
    ("requested", "available", "message"),
    [
        (["cuda"], CPU_ONLY_BUILD, "'cuda' (CUDAExecutionProvider) is not available"),
        (["tensorrt"], (CUDA, CPU), "available: CUDAExecutionProvider, CPUExecutionProvider"),
        (["gpu"], ALL, "unknown execution provider 'gpu'"),
        (["auto", "cpu"], ALL, "'auto' cannot be combined"),
        (None, ("AzureExecutionProvider",), "no usable execution provider"),
    ],
)
def test_resolve_providers_errors_say_what_is_available(
    requested: list[str] | None, available: tuple[str, ...], message: str
) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")) as caught:
        resolve_providers(requested, available)
    if "not available" in message:
        assert "onnxruntime-gpu" in caught.value.fix


def test_provider_options_tensorrt_caches_and_fp16(tmp_path: Path) -> None:
    pairs = dict(provider_options([TENSORRT, CUDA, CPU], precision="fp16", cache_dir=tmp_path, device_id=1))
    trt = pairs[TENSORRT]
    assert trt["trt_engine_cache_enable"] == "True" and trt["trt_fp16_enable"] == "True"
    assert Path(trt["trt_engine_cache_path"]) == tmp_path / "tensorrt"
    assert "trt_int8_enable" not in trt
    assert pairs[CUDA] == {"device_id": "1"} and pairs[CPU] == {}


@pytest.mark.parametrize(("precision", "fp16", "int8"), [("fp32", False, False), ("int8", False, True)])
def test_provider_options_precision_flags(tmp_path: Path, precision: str, fp16: bool, int8: bool) -> None:
    ((name, options),) = provider_options([TENSORRT], precision=precision, cache_dir=tmp_path)
    assert ("trt_fp16_enable" in options) is fp16 and ("trt_int8_enable" in options) is int8


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"INP_EDGE_CACHE_DIR": "/var/cache/x", "XDG_CACHE_HOME": "/xdg"}, Path("/var/cache/x")),
        ({"XDG_CACHE_HOME": "/xdg"}, Path("/xdg/inp-edge")),
        ({}, Path.home() / ".cache" / "inp-edge"),
    ],
)
def test_default_cache_dir(environ: dict[str, str], expected: Path) -> None:
    assert default_cache_dir(environ) == expected
