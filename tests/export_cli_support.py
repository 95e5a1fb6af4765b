"""Running `inp-export` in-process on a small drawn image set (tests/test_export_cli*.py)."""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

from edge.model.session import SessionSettings
from export import cli
from export.synthetic import SyntheticSpec

CPU_ONLY = SessionSettings(providers=("cpu",), intra_op_threads=1, warmup_runs=0)

SPEC = SyntheticSpec(size_px=64, n_train=8, n_test_good=4, n_test_defect=4)

TRAIN_FLAGS = (
    "--category", "washer", "--epochs", "3", "--batch-size", "4", "--warmup-steps", "2",
    "--input-size", "64", "--resize", "64", "--threads", "1", "--quiet",
)  # fmt: skip


@dataclass(frozen=True)
class Run:
    """One in-process `inp-export` call."""

    code: int
    stdout: str
    stderr: str


def run_cli(*argv: str | Path) -> Run:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([str(arg) for arg in argv])
    return Run(code, out.getvalue(), err.getvalue())


def read_log(out_dir: Path) -> dict:
    return json.loads((out_dir / "train_log.json").read_text())
