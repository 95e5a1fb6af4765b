"""``inp-edge``: the device command line.

Each subcommand is a ``Command`` (name, help, add_arguments, run). ``bench-model`` is defined here;
a later subcommand lives in its own module that exposes ``COMMAND = Command(...)`` and is listed in
``COMMAND_MODULES``. Modules are imported when the parser is built, so they must import their heavy
back-ends (harvesters, zmq, onnxruntime) inside ``run``. An ``InpEdgeError`` is printed on stderr
without a traceback and the exit status is 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from edge.errors import ConfigError, InpEdgeError

# Modules defining one more subcommand each (``COMMAND = Command(...)``), e.g. "edge.run_cli".
COMMAND_MODULES: tuple[str, ...] = (
    "edge.run_cli",
    "edge.check_config_cli",
    "edge.publish.listen",
    "edge.tools.bench_pipeline_cli",
    "edge.cameras_cli",
    "edge.ctl_cli",
    "edge.enroll_cli",
    "edge.calibrate_cli",
    "edge.products_cli",
)


@dataclass(frozen=True)
class Command:
    """One ``inp-edge`` subcommand."""

    name: str
    help: str  # one line, shown in ``inp-edge --help``
    description: str  # shown in ``inp-edge NAME --help``
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


BENCH_MODEL_DESCRIPTION = """\
Time an exported model on this device, one image at a time, the way the inspection loop runs it.

What is measured:
  load        session creation, contract check and warm-up (TensorRT builds its engine on the
              first load, minutes on a Jetson; later loads read it from the engine cache)
  latency     wall time of one call (a random uint8 image in, all outputs back on the host), after
              --warmup runs; --repeats blocks of --runs calls. Each percentile is the median over
              the repeats, so one disturbed block does not move it; the spread of p50 per repeat
              says how steady the machine was. p99 needs --runs of 100 or more to mean anything.
  throughput  1000 / mean latency: images per second for one camera, no batching.
  compute     the model's FLOPs from the graph (2 per multiply-accumulate of MatMul / Gemm / Conv and
              their INT8 forms; elementwise ops not counted) divided by the p50 latency.
  peak        the best speed of one 2048x2048 matrix product with the same providers and threads:
              fp32 MatMul (GFLOP/s) and u8xs8 MatMulInteger (GOP/s); fp16 too for an fp16 model.
  efficiency  compute / the peak for the model's precision (int8: the u8xs8 peak). A model made of
              large matrix products gets a good part of the peak; a low fraction means the time goes
              to memory-bound ops (norms, softmax, resize), copies, or a provider fallback: check that
              "providers" lists the ones you asked for.

The table goes to stdout, the same numbers as JSON to --json (written atomically).
Counting FLOPs and measuring the peak need the `onnx` package; without it those lines are skipped.
"""


def _add_bench_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, help="exported model (.onnx) following the inp-edge contract")
    parser.add_argument(
        "--providers",
        default="auto",
        metavar="LIST",
        help="auto (TensorRT > CUDA > CPU, whichever this onnxruntime offers) or a comma list "
        "such as cuda,cpu (default: auto)",
    )
    parser.add_argument(
        "--runs", metavar="N", type=count_arg(1), default=100, help="timed runs per repeat (default: 100)"
    )
    parser.add_argument(
        "--warmup", metavar="N", type=count_arg(0), default=10, help="untimed runs first (default: 10)"
    )
    parser.add_argument(
        "--repeats", metavar="N", type=count_arg(1), default=3, help="blocks of --runs (default: 3)"
    )
    parser.add_argument(
        "--threads",
        metavar="N",
        type=count_arg(0),
        default=0,
        help="intra-op threads; 0 = onnxruntime's default (default: 0)",
    )
    parser.add_argument(
        "--json", metavar="PATH", type=Path, default=None, help="write the result as JSON here"
    )
    parser.add_argument("--no-peak", action="store_true", help="skip the matrix-product peak (saves seconds)")
    parser.add_argument(
        "--peak-size", metavar="N", type=count_arg(64), default=2048, help="peak matrix size (default: 2048)"
    )
    parser.add_argument(
        "--cache-dir", metavar="DIR", type=Path, default=None, help="TensorRT engine cache directory"
    )
    parser.add_argument(
        "--no-spin-wait",
        dest="spin_wait",
        action="store_false",
        help="onnxruntime's threads yield the CPU at once after a run (default: they spin-wait, its default)",
    )


def _run_bench_model(args: argparse.Namespace) -> int:
    from edge.bench import bench_model, format_table, result_dict, write_json_atomic
    from edge.model.session import SessionSettings

    settings = SessionSettings(
        providers=tuple(args.providers.split(",")),
        intra_op_threads=args.threads,
        cache_dir=args.cache_dir,
        spin_wait=args.spin_wait,
    )
    print(f"loading {args.model} ...", file=sys.stderr)
    result = bench_model(
        args.model,
        settings,
        runs=args.runs,
        warmup=args.warmup,
        repeats=args.repeats,
        peak=not args.no_peak,
        peak_size=args.peak_size,
    )
    print(format_table(result))
    if args.json is not None:
        write_json_atomic(args.json, result_dict(result))
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


def say(command: str, line: str) -> None:
    """One line of a command's progress or warnings on stderr (stdout stays the command's output)."""
    print(f"inp-edge {command}: {line}", file=sys.stderr, flush=True)


def count_arg(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is below the minimum {minimum}")
        return value

    return parse


BENCH_MODEL = Command(
    name="bench-model",
    help="time a model on this device: latency, throughput, GFLOP/s against the matrix peak",
    description=BENCH_MODEL_DESCRIPTION,
    add_arguments=_add_bench_model_arguments,
    run=_run_bench_model,
)


def commands() -> tuple[Command, ...]:
    """Every subcommand: the built-in ones, then one per module in ``COMMAND_MODULES``."""
    found = [BENCH_MODEL]
    for module_name in COMMAND_MODULES:
        command = getattr(importlib.import_module(module_name), "COMMAND", None)
        if not isinstance(command, Command):
            raise ConfigError(
                f"module {module_name} is listed in edge.cli.COMMAND_MODULES but has no COMMAND",
                fix="define COMMAND = edge.cli.Command(...) in it",
            )
        found.append(command)
    return tuple(found)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inp-edge", description="Edge inspection runtime (INP-Former anomaly detection, onnxruntime)."
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in commands():
        sub = subparsers.add_parser(
            command.name,
            help=command.help,
            description=command.description,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        command.add_arguments(sub)
        sub.set_defaults(run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (0 ok, 2 usage or InpEdgeError, 130 interrupted)."""
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error argparse already printed
        return exc.code if isinstance(exc.code, int) else 2
    except InpEdgeError as exc:
        print(f"inp-edge: error: {exc}", file=sys.stderr)
        return 2
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return args.run(args)
    except InpEdgeError as exc:
        print(f"inp-edge {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"inp-edge {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    # Run the package module, not this __main__ copy: subcommand modules import edge.cli's Command.
    from edge import cli as package_cli

    sys.exit(package_cli.main())
