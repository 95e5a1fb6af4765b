"""``inp-edge calibrate``: a product's threshold from folders of good (and bad) parts, off-line."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge.cli import Command, say
from edge.errors import ConfigError, DataError

if TYPE_CHECKING:
    from edge.products.calibration import RuleResult
    from edge.products.product import Product

RULE_CHOICES = ("tail", "quantile", "f1")  # edge.products.calibration.RULES (a test keeps them equal)

DESCRIPTION = """\
Score folders of parts whose truth you know with a product, preview the threshold every rule gives
and what it would do, and with --apply save the chosen rule's threshold as a new version.

The parts go through the station's region of interest and pre-processing (with --config) and the
model (--model, else the config's model.path) here, in this process; the product is the current
version in <state_dir>/products/NAME, and it must have been enrolled with this model (else: an
error that says so; re-enroll with `inp-edge enroll`). Scores are in the product's units: a
typical good part scores about 1; a part fails when its score is above the threshold.

Rules (each prints its threshold, the share of the good parts it rejects, the share of the bad
parts it lets pass, and how it was found):
  tail      good parts only: a robust normal fit to the good scores (median, 1.4826 x MAD) and the
            threshold where --target-false-reject of good parts would fall above it. It does not
            sit at the largest good score; it sits above it only when the fit says so.
  quantile  good parts only: the --quantile of the good scores plus --margin x (that quantile -
            their median).
  f1        needs --bad: the cut with the best F1 for the bad parts (midway between two scores).

Without --apply nothing is written. With --apply the --rule's threshold (default tail) becomes the
product's image and pixel threshold, saved as a new version with a calibration record (rule,
counts, expected false-reject and escape rates); earlier versions stay (`inp-edge products rollback`).
A running service uses it after `inp-edge ctl --config STATION.yaml product name=NAME` or a
restart. Good parts that were enrolled score lower than new ones (they are in the memory):
calibrate with other good parts.

--good and --bad take a folder of images, or a folder of subfolders of images (e.g. MVTec's
test/ defect folders for --bad; a subfolder named good under --bad is refused).

Exit status: 0 done; 2 an error (nothing written): no such product, a product enrolled with
another model, an empty folder, an unreadable image, f1 without --bad, a bad rule setting.

examples:
  inp-edge calibrate --product cookie --good /data/cookie/more-good --config /etc/inp-edge/cam1.yaml
  inp-edge calibrate --product cookie --good good/ --bad bad/ --model m.onnx --state-dir state --rule f1
  inp-edge calibrate --product cookie --good good/ --config cam1.yaml --rule tail \\
      --target-false-reject 0.0005 --apply
"""


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    from edge.products_offline import add_station_arguments

    parser.add_argument("--product", required=True, metavar="NAME", help="product name (its current version)")
    parser.add_argument("--good", required=True, metavar="DIR", type=Path, help="images of good parts")
    parser.add_argument("--bad", metavar="DIR", type=Path, help="images of bad (defective) parts")
    add_station_arguments(parser)
    parser.add_argument(
        "--rule", choices=RULE_CHOICES, default="tail", help="the rule --apply uses (default: tail)"
    )
    parser.add_argument(
        "--quantile", metavar="Q", type=float, default=0.99, help="quantile rule (default 0.99)"
    )
    parser.add_argument("--margin", metavar="M", type=float, default=0.1, help="quantile rule (default 0.1)")
    parser.add_argument(
        "--target-false-reject",
        metavar="P",
        type=float,
        default=0.001,
        help="tail rule: the share of good parts allowed above the threshold (default 0.001)",
    )
    parser.add_argument("--scores", action="store_true", help="print every image's score")
    parser.add_argument("--apply", action="store_true", help="save the --rule's threshold as a new version")


def _run(args: argparse.Namespace) -> int:
    from edge.products.calibration import quantile_rule, tail_rule
    from edge.products.product import check_name
    from edge.products.registry import ProductRegistry
    from edge.products_offline import list_images, open_detector, resolve_station

    check_name(args.product)
    if args.rule == "f1" and args.bad is None:
        raise ConfigError("rule f1 needs bad parts", fix="add --bad DIR, or choose --rule tail or quantile")
    quantile_rule([0.0], quantile=args.quantile, margin=args.margin)  # refuses bad settings before any work
    tail_rule([0.0], target_false_reject=args.target_false_reject)
    good = list_images(args.good, what="good images folder", subfolders=True)
    bad = [] if args.bad is None else _bad_images(args.bad)
    station = resolve_station(args)
    registry = ProductRegistry(station.state_dir)
    registry.load(args.product, memory=False)  # exists and is readable, before the model is opened
    say("calibrate", f"loading {station.model_path} ...")
    detector = open_detector(station, want_features=True)
    info = detector.loaded.info
    product = registry.load(args.product, model_sha256=info.sha256, model_id=info.model_id)
    _warn_if_enrolled_from(product, args.good)
    good_scores = _score(product, detector, good, "good")
    bad_scores = _score(product, detector, bad, "bad") if bad else []
    if args.scores:
        print(
            _format_scores(good, good_scores, "good")
            + ("\n" + _format_scores(bad, bad_scores, "bad") if bad else "")
        )
    return _preview_and_apply(args, registry, product, good_scores, bad_scores)


def _bad_images(folder: Path) -> list[Any]:
    from edge.products_offline import list_images

    files = list_images(folder, what="bad images folder", subfolders=True)
    good = [f.label for f in files if f.label.split("/")[0] == "good" and "/" in f.label]
    if good:
        raise DataError(
            f"bad images folder {folder} has a subfolder 'good' ({len(good)} images)",
            fix="point --bad at the defect folders only, or at a folder without the good parts",
        )
    return files


def _score(product: Product, detector: Any, files: Sequence[Any], what: str) -> list[float]:
    from edge.products.scoring import ProductScorer
    from edge.products_offline import infer_folder

    scorer = ProductScorer(product, detector.loaded.info)
    return [scorer.score(inference).score for inference in infer_folder(detector, files, desc=what)]


def _preview_and_apply(
    args: argparse.Namespace, registry: Any, product: Product, good: list[float], bad: list[float]
) -> int:
    from edge.products.calibration import format_preview, preview

    results = preview(
        good, bad, quantile=args.quantile, margin=args.margin, target_false_reject=args.target_false_reject
    )
    print(f"{product.label()}: {len(good)} good, {len(bad)} bad part(s) scored")
    print(f"  good scores  median {_median(good):.4g}, max {max(good):.4g}")
    if bad:
        print(f"  bad scores   median {_median(bad):.4g}, min {min(bad):.4g}")
    print(f"  now          {_rates(product.thresholds.image, good, bad)}")
    print(format_preview(results))
    chosen = next(result for result in results if result.rule == args.rule)
    if not args.apply:
        next_version = registry.versions(product.name)[-1] + 1
        print(
            f"nothing written: add --apply to save the {chosen.rule} threshold {chosen.threshold:.6g} "
            f"as {product.name} v{next_version}"
        )
        return 0
    saved = registry.save(_applied(product, chosen, len(good), len(bad)), note=_note(args, chosen))
    print(
        f"saved {saved.label()}: image and pixel threshold {chosen.threshold:.6g} "
        f"(was {product.thresholds.image:.6g}), rule {chosen.rule}"
    )
    return 0


def _applied(product: Product, result: RuleResult, n_good: int, n_bad: int) -> Product:
    from dataclasses import replace

    from edge.products.product import CalibrationRecord, utc_now_iso

    expected_false_reject = result.expected_false_reject
    if expected_false_reject is None:
        expected_false_reject = result.false_reject_rate  # the rate measured on these parts
    record = CalibrationRecord(
        at=utc_now_iso(),
        rule=result.rule,
        threshold=result.threshold,
        n_good=n_good,
        n_bad=n_bad,
        expected_false_reject=expected_false_reject,
        expected_escape=result.escape_rate,
        note=f"inp-edge calibrate: {result.note}",
    )
    thresholds = replace(
        product.thresholds,
        image=result.threshold,
        pixel=result.threshold,
        source=f"calibrate {result.rule}: {result.note}",
    )
    return product.with_thresholds(thresholds, record)


def _note(args: argparse.Namespace, result: RuleResult) -> str:
    bad = f" and bad parts in {args.bad}" if args.bad is not None else ""
    return f"calibrated ({result.rule}) with good parts in {args.good}{bad}"


def _rates(threshold: float, good: Sequence[float], bad: Sequence[float]) -> str:
    rejected = sum(score > threshold for score in good) / len(good)
    text = f"threshold {threshold:.6g}: {100 * rejected:.2f} % of these good parts rejected"
    if bad:
        escaped = sum(score <= threshold for score in bad) / len(bad)
        text += f", {100 * escaped:.2f} % of these bad parts passed"
    return text


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _format_scores(files: Sequence[Any], scores: Sequence[float], what: str) -> str:
    width = max(len(file.label) for file in files)
    return "\n".join(
        f"  {what:<4} {file.label:<{width}}  {score:8.4f}" for file, score in zip(files, scores, strict=True)
    )


def _warn_if_enrolled_from(product: Product, folder: Path) -> None:
    source = str(product.enrollment.get("source", ""))
    if source.startswith(f"folder {folder.resolve()} "):
        say(
            "calibrate",
            f"{product.label()} was enrolled from {folder}: those parts are in its memory and score low; "
            "calibrate with other good parts for a threshold that holds on the line",
        )


COMMAND = Command(
    name="calibrate",
    help="preview a product's threshold rules on folders of good / bad parts; --apply saves one",
    description=DESCRIPTION,
    add_arguments=_add_arguments,
    run=_run,
)
