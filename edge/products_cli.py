"""``inp-edge products list|show|rollback``: the products saved on a station, and their versions."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge.cli import Command, count_arg

if TYPE_CHECKING:
    from edge.products.product import Product
    from edge.products.registry import ProductRegistry, VersionInfo

DESCRIPTION = """\
The products saved on this station (<state_dir>/products/<name>/): list them, show one, or roll
one back to an earlier version. A product is what `inp-edge enroll` makes from a few good parts:
the model it was enrolled with, how its map is fused and normalised, its thresholds and its
few-shot memory; calibration changes the thresholds.

Versions: every save is a new version (v1, v2, ...) and CURRENT names the one in use. Nothing is
ever overwritten: a rollback saves the content of an earlier version as a NEW version, with a
"rollback" line in its calibration history, so a rollback can itself be rolled back. A running
service keeps the version it loaded until the product is switched again or the service restarts.

Where: --state-dir DIR, or --config STATION.yaml (its state_dir key).

Exit status: 0 done; 2 no such product or version, a damaged version, or a usage error.

examples:
  inp-edge products list --config /etc/inp-edge/line1-cam1.yaml
  inp-edge products show cookie --state-dir /var/lib/inp-edge/line1-cam1
  inp-edge products show cookie --version 2 --json --state-dir state
  inp-edge products rollback cookie --state-dir state          # back to the version before the current
  inp-edge products rollback cookie --to 2 --state-dir state
"""


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    where = argparse.ArgumentParser(add_help=False)
    group = where.add_argument_group("where the products are (one of)")
    choice = group.add_mutually_exclusive_group(required=True)
    choice.add_argument("--state-dir", type=Path, metavar="DIR", help="the station's state dir")
    choice.add_argument("--config", type=Path, metavar="STATION.yaml", help="station config: its state_dir")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser(
        "list",
        parents=[where],
        help="every product: current version, model, fusion, threshold, memory, enrollment time",
        description="One line per product: its current version and what it holds.",
    )
    show = actions.add_parser(
        "show",
        parents=[where],
        help="one product: settings, calibration history and versions",
        description="A product's settings, its calibration history and every version.",
    )
    show.add_argument("name", metavar="NAME", help="product name")
    show.add_argument("--version", type=count_arg(1), metavar="N", help="this version (default: the current)")
    show.add_argument(
        "--json", action="store_true", help="print product.yaml's content and the versions as JSON"
    )
    rollback = actions.add_parser(
        "rollback",
        parents=[where],
        help="make an earlier version current again (saved as a new version)",
        description="Save the content of an earlier version as a new version and make it current.",
    )
    rollback.add_argument("name", metavar="NAME", help="product name")
    rollback.add_argument(
        "--to",
        type=count_arg(1),
        metavar="N",
        help="the version to go back to (default: the one before the current)",
    )


def _run(args: argparse.Namespace) -> int:
    from edge.products.registry import ProductRegistry

    registry = ProductRegistry(_state_dir(args))
    if args.action == "list":
        return _list(registry)
    if args.action == "show":
        return _show(registry, args.name, args.version, as_json=args.json)
    return _rollback(registry, args.name, args.to)


def _state_dir(args: argparse.Namespace) -> Path:
    if args.state_dir is not None:
        return args.state_dir
    from edge.config import load_config

    return load_config(args.config).state_dir


def _list(registry: ProductRegistry) -> int:
    from edge.products.product import ProductError

    names = registry.names()
    if not names:
        print(f"no products in {registry.root} (make one: inp-edge enroll --product NAME ...)")
        return 0
    rows, problems = [], []
    for name in names:
        try:
            product = registry.load(name, memory=False)
        except ProductError as exc:
            problems.append(f"{name}: {exc}")
            continue
        rows.append(_list_row(product, len(registry.versions(name))))
    headers = ("NAME", "CURRENT", "VERSIONS", "MODEL", "FUSION", "IMAGE THR", "MEMORY TOKENS", "ENROLLED AT")
    print(f"products in {registry.root}")
    print(table(headers, rows))
    for problem in problems:
        print(f"inp-edge products: error: {problem}", file=sys.stderr)
    return 2 if problems else 0


def _list_row(product: Product, versions: int) -> tuple[str, ...]:
    enrollment = product.enrollment
    return (
        product.name,
        f"v{product.version}",
        str(versions),
        product.model_id,
        product.fusion,
        f"{product.thresholds.image:.4g}",
        str(enrollment.get("memory_tokens", "-")),
        str(enrollment.get("enrolled_at", "-")),
    )


def _show(registry: ProductRegistry, name: str, version: int | None, *, as_json: bool) -> int:
    product = registry.load(name, version=version)
    history = registry.history(name)
    this = next(row for row in history if row.version == product.version)
    if as_json:
        document = {
            "product": product.to_yaml_dict(saved_at=this.saved_at, note=this.note),
            "current": this.current,
            "versions": [asdict(row) for row in history],
        }
        print(json.dumps(document, indent=2))
        return 0
    print(describe(product, this))
    print("calibrations:")
    print(_indent(table(CALIBRATION_HEADERS, [_calibration_row(record) for record in product.calibrations])))
    print("versions:")
    print(_indent(table(VERSION_HEADERS, [_version_row(row) for row in history])))
    return 0


CALIBRATION_HEADERS = ("AT", "RULE", "THRESHOLD", "GOOD", "BAD", "EXP. FALSE REJECT", "EXP. ESCAPE", "NOTE")
VERSION_HEADERS = ("", "VERSION", "SAVED AT", "IMAGE THR", "NOTE")


def describe(product: Product, this: VersionInfo) -> str:
    """The settings of one version, a line each."""
    state = "current" if this.current else "not current"
    memory_norm = product.memory_norm
    norms = f"inp (x - {product.inp_norm.center:.4g}) / {product.inp_norm.scale:.4g}"
    if memory_norm is not None:
        norms += f"; memory (x - {memory_norm.center:.4g}) / {memory_norm.scale:.4g}"
    t, g = product.thresholds, product.good_scores
    memory = (
        "none" if product.memory is None else "{} tokens x {} channels, float32".format(*product.memory.shape)
    )
    rows = [
        ("saved", f"{this.saved_at}  {this.note}".rstrip()),
        ("model", f"{product.model_id} (sha256 {product.model_sha256[:12]})"),
        ("fusion", f"{product.fusion}; maps normalised as {norms}"),
        ("thresholds", f"image {t.image:.4g}, pixel {t.pixel:.4g}, min region {t.min_region_area_px:g} px²"),
        ("", f"source: {t.source}"),
        (
            "good scores",
            f"n {g.n}, mean {g.mean:.4g}, std {g.std:.4g}, min {g.min:.4g}, p50 {g.p50:.4g}, max {g.max:.4g}",
        ),
        ("memory", memory),
        ("enrollment", ", ".join(f"{key} {value}" for key, value in product.enrollment.items()) or "-"),
    ]
    lines = [f"{product.label()} ({state})"] + [f"  {label:<12}{text}" for label, text in rows]
    return "\n".join(lines)


def _calibration_row(record: Any) -> tuple[str, ...]:
    return (
        record.at,
        record.rule,
        f"{record.threshold:.4g}",
        str(record.n_good),
        str(record.n_bad),
        _rate(record.expected_false_reject),
        _rate(record.expected_escape),
        record.note,
    )


def _version_row(row: VersionInfo) -> tuple[str, ...]:
    return (
        "*" if row.current else "",
        f"v{row.version}",
        row.saved_at,
        f"{row.image_threshold:.4g}",
        row.note,
    )


def _rollback(registry: ProductRegistry, name: str, to_version: int | None) -> int:
    product = registry.rollback(name, to_version)
    note = registry.history(name)[-1].note
    print(f"{product.label()} is now current: {note}")
    print(
        f"  image threshold {product.thresholds.image:.4g}, model {product.model_id}, fusion {product.fusion}"
    )
    print("a running service keeps the version it loaded until the product is switched again or it restarts")
    return 0


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns, two spaces apart; "(none)" under the headers when there is no row."""
    widths = [max([len(header)] + [len(row[i]) for row in rows]) for i, header in enumerate(headers)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
             for line in [tuple(headers), *rows]]  # fmt: skip
    return "\n".join(lines if rows else [*lines, "(none)"])


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


COMMAND = Command(
    name="products",
    help="the products saved on this station: list, show one, roll one back to an earlier version",
    description=DESCRIPTION,
    add_arguments=_add_arguments,
    run=_run,
)
