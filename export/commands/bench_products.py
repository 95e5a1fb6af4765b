"""`inp-export bench-products`: few-shot products on a deployed model, with the device's own code.

Prints a table, writes products.json (and --results). Library: export/products_bench.py.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from edge.cli import Command, count_arg
from edge.errors import DataError
from export.commands import add_results_argument, command_line, utc_now, write_json, write_results

DESCRIPTION = """\
Enroll products on an exported model with the device's enrollment and score their test splits with
the device's product scoring: the INP-Former map alone ("inp"), the few-shot memory alone
("memory") and their fusion ("fused"). Image AUROC, pixel AUROC, AUPRO, and the false-reject and
escape rates at the threshold enrollment sets, per product.

--unseen CATEGORY_DIR   a category the model never saw: enrolled from K of its train/good images
                        for every --shots K, with --seeds different choices of the K images
--trained CATEGORY_DIR  a category the model was trained on: enrolled from all its training images
Each CATEGORY_DIR is in the MVTec layout (train/good, test/<kind>, ground_truth/<kind>).

Example (docs/benchmarks.md, "Products"):
  inp-export bench-products --model runs/mc/model-int8.onnx \\
      --unseen ../shared/datasets/lookout_cookies/cookie \\
      --trained ../shared/datasets/mvtec_ad/bottle --trained ../shared/datasets/glass_ad/glass \\
      --shots 1 2 4 8 --seeds 5 --results docs/results/products.json
How the fused map's form was chosen: the same with --shots 4 --map-sweep --out runs/products-sweep
--results docs/results/products-map-sweep.json."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, required=True, help="the ONNX artifact (with patch_features)")
    parser.add_argument("--unseen", type=Path, action="append", default=[], metavar="CATEGORY_DIR")
    parser.add_argument("--trained", type=Path, action="append", default=[], metavar="CATEGORY_DIR")
    parser.add_argument("--shots", type=count_arg(1), nargs="+", default=[1, 2, 4, 8], help="K values")
    parser.add_argument("--seeds", type=count_arg(1), default=5, help="choices of the K images per K")
    parser.add_argument(
        "--memory-tokens", type=count_arg(1), default=None, help="memory bound (default: the device's)"
    )
    parser.add_argument(
        "--map-sweep",
        action="store_true",
        help="also score each fused enrollment's test split with every candidate form of the fused map "
        "(weighted means, max, gates: export/map_sweep.py) and print their pixel AUROC and AUPRO",
    )
    parser.add_argument("--threads", type=count_arg(0), default=0, help="onnxruntime threads (0: all)")
    parser.add_argument("--out", type=Path, default=Path("runs/products"), help="products.json goes here")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    add_results_argument(parser)


def check_category(folder: Path) -> None:
    for part in ("train/good", "test"):
        if not (folder / part).is_dir():
            raise DataError(
                f"{folder / part} does not exist: {folder} is not a category in the MVTec layout",
                fix="give the category folder itself, e.g. ../shared/datasets/lookout_cookies/cookie",
            )


def run(args: argparse.Namespace) -> int:
    for folder in (*args.unseen, *args.trained):
        check_category(folder)
    if not args.unseen and not args.trained:
        raise DataError("nothing to measure", fix="give --unseen CATEGORY_DIR and/or --trained CATEGORY_DIR")
    from edge.products.memory import DEFAULT_MAX_TOKENS
    from export.map_sweep import sweep_table
    from export.onnx_eval import open_artifact
    from export.products_bench import check_patch_features, run_study, table

    loaded = open_artifact(args.model, args.threads)  # refuses a contract-breaking file first
    check_patch_features(loaded)
    tokens = args.memory_tokens or DEFAULT_MAX_TOKENS
    body = run_study(
        loaded,
        args.unseen,
        args.trained,
        args.shots,
        args.seeds,
        tokens,
        quiet=args.quiet,
        map_sweep=args.map_sweep,
    )
    document: dict[str, Any] = {
        "command": command_line(),
        "created": utc_now(),
        "model": {
            "path": str(args.model),
            "model_id": loaded.info.model_id,
            "precision": loaded.info.precision,
        },
        "max_memory_tokens": tokens,
        **body,
    }
    print(table(document))
    if args.map_sweep:
        print("\n" + sweep_table(body["rows"]))
    print(f"written: {write_json(args.out / 'products.json', document)}")
    write_results(args.results, document)
    return 0


COMMAND = Command(
    name="bench-products",
    help="few-shot products on a model: INP map vs memory vs fusion",
    description=DESCRIPTION,
    add_arguments=add_arguments,
    run=run,
)
