"""What each `inp-export` subcommand does: argument handling and reports, on top of the library.

One module per subcommand (train, evaluate, export, quantize, benchmark, speed, demo), each exposing
``COMMAND = edge.cli.Command(...)``; export/cli.py lists them in a static table. The parser imports
every module, so they import the torch-heavy library inside ``run`` (`inp-export --help` stays fast).
Helpers shared by the reports live here.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from edge.atomic import write_text_atomic


def command_line() -> str:
    """The command line of this process as the user typed it (for reports)."""
    return " ".join(["inp-export", *sys.argv[1:]]) if sys.argv else "inp-export"


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def add_results_argument(parser: argparse.ArgumentParser, *aliases: str) -> None:
    parser.add_argument(
        "--results",
        *aliases,
        dest="results",
        type=Path,
        metavar="PATH",
        help="also write the JSON report here, e.g. docs/results/NAME.json (small; kept with the docs)",
    )


def write_json(path: Path, document: Any) -> Path:
    """One JSON document to ``path`` atomically, through export/report.py's ``json_text`` (NaN → null)."""
    from export.report import json_text

    return write_text_atomic(Path(path), json_text(document))


def write_results(path: Path | None, document: Any) -> None:
    """The report's JSON document to ``--results`` too (atomically; parent folders are created)."""
    if path is None:
        return
    write_json(path, document)
    print(f"written: {path}")
