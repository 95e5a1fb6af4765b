"""A contract-breaking artifact gets one answer from every command that takes one.

`inp-export quantize`, `inp-export speed --artifact`, `inp-export evaluate --model` and
`inp-edge bench-model` all open artifacts through edge's session code, so each refuses the same
broken file with the same error text, exit status 2, no traceback, and nothing written.
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from edge import cli as edge_cli
from edge.model import contract as c
from export import cli as export_cli
from tests.test_artifact import (
    CATEGORY,
    TinyArtifact,
    build_tiny_artifact,
    write_without_metadata,
    write_without_output,
)


@dataclass(frozen=True)
class Answer:
    code: int
    stdout: str
    stderr: str

    @property
    def error(self) -> str:
        """The error text after "<prog> <command>: error: " (through to the end, the fix included)."""
        found = re.search(r": error: (.*)\Z", self.stderr, flags=re.S)
        assert found, f"no error line in stderr: {self.stderr!r}"
        return found.group(1).strip()


def answer(main: Callable, argv: list) -> Answer:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(arg) for arg in argv])
    return Answer(code, out.getvalue(), err.getvalue())


def truncated(source: Path, destination: Path) -> Path:
    data = source.read_bytes()
    destination.write_bytes(data[: len(data) // 2])
    return destination


BREAKS = {
    "metadata-key-removed": lambda src, dst: write_without_metadata(src, c.META_SCORE_STATS, dst),
    "pred-score-output-removed": lambda src, dst: write_without_output(src, c.OUTPUT_PRED_SCORE, dst),
    "truncated-file": truncated,
}
EXPECTED = {
    "metadata-key-removed": c.META_SCORE_STATS,
    "pred-score-output-removed": "no output 'pred_score'",
    "truncated-file": "truncated",
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TinyArtifact:
    return build_tiny_artifact(tmp_path_factory)


@pytest.mark.parametrize("kind", list(BREAKS))
def test_every_command_refuses_a_broken_artifact_alike_before_any_work(
    tiny: TinyArtifact, tmp_path: Path, kind: str
) -> None:
    broken = BREAKS[kind](tiny.onnx_path, tmp_path / "broken.onnx")
    out = tmp_path / "out"
    out.mkdir()
    data = ["--data-root", tiny.data_root, "--category", CATEGORY]
    answers = {
        "quantize": answer(
            export_cli.main,
            ["quantize", "--model", broken, "--out", out / "int8.onnx", *data, "--results", out / "q.json"],
        ),
        "speed": answer(
            export_cli.main,
            ["speed", "--artifact", broken, "--out", out / "speed", "--results", out / "s.json"],
        ),
        "evaluate": answer(
            export_cli.main,
            ["evaluate", "--model", broken, "--out", out / "eval", *data, "--results", out / "e.json"],
        ),
        "bench-model": answer(
            edge_cli.main, ["bench-model", broken, "--json", out / "bench.json", "--no-peak"]
        ),
    }
    for name, result in answers.items():
        assert result.code == 2, f"{name}: exit {result.code}\n{result.stderr}"
        assert "Traceback" not in result.stderr, name
        assert str(broken) in result.error and EXPECTED[kind] in result.error, f"{name}: {result.error}"
        assert "fix:" in result.error, name
    assert len({result.error for result in answers.values()}) == 1, {n: r.error for n, r in answers.items()}
    assert list(out.iterdir()) == []  # nothing written: no model, report, timing or results file
