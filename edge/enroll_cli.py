"""``inp-edge enroll``: a new product (or a new version of one) from K good parts, no torch."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge.cli import Command, count_arg, say
from edge.errors import ConfigError, DataError

if TYPE_CHECKING:
    from edge.products.enroll import Enrolled
    from edge.products.product import Product

FUSION_CHOICES = ("fused", "inp", "memory")  # edge.products.product.FUSIONS (a test keeps them equal)
DEFAULT_MAX_TOKENS_TEXT = "2048"  # edge.products.memory.DEFAULT_MAX_TOKENS, for --help only

DESCRIPTION = """\
Enroll a product from K good parts: the deployed model runs on each part, and the product keeps a
few-shot memory of their patch features (thinned to --max-memory-tokens rows, so memory and
scoring time stay bounded), the normalisation of its maps, the good parts' score statistics and
first thresholds (a normal fit to the good scores; recalibrate on the line with `inp-edge
calibrate`). It is saved as a new version in <state_dir>/products/NAME; earlier versions stay.

Two ways:
  --images DIR   off-line: the first K images of DIR (natural name order: part2 before part10) go
                 through the station's region of interest and pre-processing (with --config) and
                 the model (--model, else the config's model.path), here, in this process.
  --live         through the running service's control socket (--config or --endpoint): the next
                 K parts the camera delivers (any verdict but error) are enrolled by the service,
                 which saves the product; with --activate it inspects with it from then on.
                 Ctrl-C cancels the enrollment on the service (nothing is saved).

Flagged parts: a part whose score lies far above the others' (a robust z-score above 3.5, from 3
parts on) is probably not a good part (a defect, a wrong product, a bad image). Each part's score
and every flag are printed BEFORE anything is saved, and:
  default          the flagged parts are left out and the product is built from the others, but
                   it is saved only after you confirm: answer y at the prompt, or pass --yes.
                   Without either (no terminal) nothing is saved and the exit status is 2.
  --keep-flagged   the flagged parts are kept in the product and it is saved (the flags are still
                   recorded in its enrollment summary). Off-line only.
On the live path the service leaves flagged parts out and saves; the flags are printed after.

Exit status: 0 saved; 2 an error (nothing saved): a bad option, fewer than K images, a model
without patch_features for a memory fusion, flagged parts not confirmed, a refusal by the service;
130 interrupted.

examples:
  inp-edge enroll --product cookie --shots 4 --images /data/cookie/good --config /etc/inp-edge/cam1.yaml
  inp-edge enroll --product cookie --shots 4 --images good/ --model model.onnx --state-dir state --yes
  inp-edge enroll --product cookie --shots 8 --live --config /etc/inp-edge/cam1.yaml --activate
  inp-edge enroll --product cookie --shots 4 --live --endpoint tcp://127.0.0.1:5571
"""


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    from edge.products_offline import add_station_arguments

    parser.add_argument("--product", required=True, metavar="NAME", help="product name (e.g. cookie)")
    parser.add_argument("--shots", required=True, metavar="K", type=count_arg(1), help="good parts to enroll")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", metavar="DIR", type=Path, help="off-line: a folder of good parts' images")
    source.add_argument("--live", action="store_true", help="from the camera, through the running service")
    add_station_arguments(parser)
    parser.add_argument(
        "--endpoint", metavar="EP", help="--live: the service's control endpoint (default: the config's)"
    )
    parser.add_argument(
        "--fusion",
        choices=FUSION_CHOICES,
        help="how the product scores: fused (model map + memory map), inp (model map only), memory "
        "(memory map only) (default: fused)",
    )
    parser.add_argument(
        "--max-memory-tokens",
        metavar="N",
        type=count_arg(1),
        help=f"the memory's bound in patch-feature rows (default: {DEFAULT_MAX_TOKENS_TEXT})",
    )
    parser.add_argument(
        "--keep-flagged", action="store_true", help="keep flagged parts in the product (off-line)"
    )
    parser.add_argument(
        "--activate",
        action="store_true",
        help="make the new version the running service's active product (needs --config or --endpoint)",
    )
    parser.add_argument("--yes", action="store_true", help="save without asking when parts were flagged")
    from edge.enroll_live_cli import add_curve_arguments

    add_curve_arguments(parser)


def _run(args: argparse.Namespace) -> int:
    from edge.products.product import check_name

    check_name(args.product)
    if args.live:
        from edge.enroll_live_cli import run_live

        return run_live(args)
    if args.endpoint is not None and not args.activate:
        raise ConfigError("--endpoint is for --live or --activate", fix="drop --endpoint, or add --live")
    return _run_offline(args)


def _run_offline(args: argparse.Namespace) -> int:
    from edge.products.enroll import EnrollSettings, enroll_product
    from edge.products.memory import DEFAULT_MAX_TOKENS
    from edge.products.product import DEFAULT_FUSION
    from edge.products.registry import ProductRegistry
    from edge.products_offline import check_patch_features, open_detector, resolve_station

    files = _checked_images(args)
    station = resolve_station(args)
    registry = ProductRegistry(station.state_dir)
    fusion = args.fusion or DEFAULT_FUSION
    say("enroll", f"loading {station.model_path} ...")
    detector = open_detector(station, want_features=fusion != "inp")
    check_patch_features(detector.loaded.info, fusion)
    say("enroll", _versions_line(registry, args.product))
    shots = _shots(detector, files[: args.shots])
    settings = EnrollSettings(
        fusion=fusion,
        max_memory_tokens=args.max_memory_tokens or DEFAULT_MAX_TOKENS,
        drop_flagged=not args.keep_flagged,
    )
    source = f"folder {args.images.resolve()} (first {args.shots} of {len(files)} images)"
    info = detector.loaded.info
    enrolled = enroll_product(
        args.product, shots, info, settings, source=source, progress=partial(say, "enroll")
    )
    print(format_parts(enrolled, [shot.label for shot in shots], kept_flagged=args.keep_flagged))
    if enrolled.flagged and not args.keep_flagged:
        _confirm_without_flagged(args, enrolled)
    saved = registry.save(enrolled.product, note=f"enrolled from {source}")
    print(format_summary(saved, enrolled.build_s, registry.folder(saved.name)))
    if args.activate:
        from edge.enroll_live_cli import activate

        activate(args, saved)
    return 0


def _checked_images(args: argparse.Namespace) -> list[Any]:
    """Every image of --images (at least --shots of them), and --activate's target: before the model."""
    from edge.products_offline import list_images

    files = list_images(args.images, what="images folder", subfolders=False)
    if len(files) < args.shots:
        raise DataError(
            f"images folder {args.images} holds {len(files)} image(s), --shots asks for {args.shots}",
            fix=f"add good parts' images to {args.images}, or lower --shots to {len(files) or 1}",
        )
    if args.activate and args.config is None and args.endpoint is None:
        raise ConfigError(
            "--activate needs the running service", fix="add --config STATION.yaml or --endpoint EP"
        )
    return files


def _shots(detector: Any, files: Sequence[Any]) -> list[Any]:
    from edge.products.enroll import Shot
    from edge.products_offline import infer_folder

    inferences = infer_folder(detector, files, desc="parts")
    return [Shot.of(file.label, inference) for file, inference in zip(files, inferences, strict=True)]


def _versions_line(registry: Any, name: str) -> str:
    versions = registry.versions(name)
    if not versions:
        return f"new product {name} in {registry.root}"
    return f"product {name} has v{versions[0]}..v{versions[-1]}; this enrollment adds v{versions[-1] + 1}"


def _confirm_without_flagged(args: argparse.Namespace, enrolled: Enrolled) -> None:
    from edge.products.product import ProductError

    names = ", ".join(flag.label for flag in enrolled.flagged)
    if args.yes:
        return
    if sys.stdin.isatty():
        answer = input(f"save {args.product} without {names}? [y/N] ").strip().lower()
        if answer in ("y", "yes"):
            return
    raise ProductError(
        f"{len(enrolled.flagged)} part(s) flagged ({names}); nothing saved",
        fix="look at the flagged images: replace them with good parts, or rerun with --yes to save the "
        "product without them, or with --keep-flagged to keep them in it",
    )


def format_parts(enrolled: Enrolled, labels: Sequence[str], *, kept_flagged: bool) -> str:
    """Each part's product score (against the others; a typical good part scores about 1) and its flag."""
    flags = {flag.label: flag for flag in enrolled.flagged}
    kept = [label for label in labels if kept_flagged or label not in flags]
    scores = enrolled.shot_scores
    by_label = dict(zip(enrolled.shot_labels, scores, strict=True))
    width = max(len(label) for label in labels)
    lines = ["part scores (each against the others; a typical good part scores about 1):"]
    for label in labels:
        score = by_label.get(label)
        text = f"{score:8.3f}" if score is not None else "       -"
        flag = flags.get(label)
        if flag is not None:
            text += f"  FLAGGED: {flag.reason}; " + ("kept (--keep-flagged)" if kept_flagged else "left out")
        lines.append(f"  {label:<{width}}  {text}")
    if len(by_label) < len(kept):
        lines.append(f"  (scores from {len(by_label)} of the {len(kept)} parts kept: the statistics' bound)")
    return "\n".join(lines)


def format_summary(product: Product, build_s: float, folder: Path | None = None) -> str:
    """What was saved: version, model, parts, memory and its bound, scores, thresholds, build time."""
    e, t, g = product.enrollment, product.thresholds, product.good_scores
    flagged = list(e.get("flagged", []))
    memory = "none (fusion inp)"
    if product.memory is not None:
        rows, channels = product.memory.shape
        memory = f"{rows} tokens x {channels} channels (bound {e.get('max_memory_tokens')} tokens)"
    rows_out = [
        ("model", f"{product.model_id} (sha256 {product.model_sha256[:12]})"),
        ("fusion", product.fusion),
        ("parts", f"{e.get('shots')} enrolled" + (f"; flagged: {', '.join(flagged)}" if flagged else "")),
        ("memory", memory),
        ("good scores", f"n {g.n}, mean {g.mean:.3f}, std {g.std:.3f}, max {g.max:.3f}"),
        ("thresholds", f"image {t.image:.6g}, pixel {t.pixel:.6g} ({t.source})"),
        ("built in", f"{build_s:.2f} s after the last capture"),
    ]
    where = f" in {folder}" if folder is not None else ""
    head = f"saved {product.label()}{where}"
    return "\n".join([head, *(f"  {name:<12} {text}" for name, text in rows_out)])


COMMAND = Command(
    name="enroll",
    help="enroll a product from K good parts (an image folder, or the live camera through the service)",
    description=DESCRIPTION,
    add_arguments=_add_arguments,
    run=_run,
)
