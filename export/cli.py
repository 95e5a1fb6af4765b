"""``inp-export``: train, evaluate, export and quantize INP-Former models (the torch side).

The subcommands live in export/commands/, one module each exposing ``COMMAND`` (an
``edge.cli.Command``); ``COMMANDS`` below is the static table. An ``InpEdgeError`` (the one error
family: a bad path, file, option, dataset, checkpoint or artifact) is printed on stderr without a
traceback, exit status 2; usage errors (an unknown choice, a missing option) exit 2 from argparse;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from edge.cli import Command
from edge.errors import InpEdgeError
from export.commands import (
    bench_products,
    benchmark,
    convert_official,
    demo,
    evaluate,
    quantize,
    speed,
    train,
)
from export.commands import export as export_command

DESCRIPTION = """\
The model side of inp-edge. Typical flow:
  inp-export train     --data-root DIR --category NAME --out runs/NAME
  inp-export evaluate  --checkpoint runs/NAME/checkpoint.pt --out runs/NAME/eval
  inp-export export    --checkpoint runs/NAME/checkpoint.pt --out runs/NAME/model.onnx
  inp-export quantize  --model runs/NAME/model.onnx --precision int8 --out runs/NAME/model-int8.onnx
  inp-export evaluate  --model runs/NAME/model-int8.onnx
Every long step shows progress; every report is written as JSON and Markdown.
"""

COMMANDS: tuple[Command, ...] = (
    train.COMMAND,
    evaluate.COMMAND,
    convert_official.COMMAND,
    export_command.COMMAND,
    quantize.COMMAND,
    benchmark.COMMAND,
    speed.COMMAND,
    bench_products.COMMAND,
    demo.COMMAND,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inp-export", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        child = sub.add_parser(
            command.name,
            help=command.help,
            description=command.description,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        command.add_arguments(child)
        child.set_defaults(run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (0 ok, 2 usage or user error, 3 gate refused, 130 interrupted)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error argparse already printed
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return int(args.run(args))
    except InpEdgeError as exc:
        print(f"inp-export {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"inp-export {args.command}: interrupted", file=sys.stderr)
        return 130


__all__ = ["COMMANDS", "build_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
