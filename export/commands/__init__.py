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

from edge.atomic import write_text_atomic


def command_line() -> str:
    """The command line of this process as the user typed it (for reports)."""
    return " ".join(["inp-export", *sys.argv[1:]]) if sys.argv else "inp-export"


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def add_results_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--results",
        type=Path,
        metavar="PATH",
        help="also write the JSON report here, e.g. docs/results/NAME.json (small; kept with the docs)",
    )


def write_results(path: Path | None, json_text: str) -> None:
    """Copy a JSON report to ``--results`` (atomically; parent folders are created)."""
    if path is None:
        return
    write_text_atomic(Path(path), json_text)
    print(f"written: {path}")
