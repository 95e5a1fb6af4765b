"""`inp-export benchmark`: train on this CPU and evaluate beside a kNN baseline, on the shared real sets.

The plan trains one single-class model per set and one multi-class model over all three, then
evaluates every model on each of its categories. Results: benchmark.json and benchmark.md in --out
(and --results), with per-model training time, so the targets can be read off one table.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from edge.atomic import write_text_atomic
from edge.cli import Command
from edge.errors import DataError
from export.commands import add_results_argument, command_line, utc_now, write_json, write_results

# (set folder, category) as laid out in ../shared/datasets (see SOURCES.md there)
SETS = {"bottle": "mvtec_ad", "glass": "glass_ad", "cookie": "lookout_cookies"}


@dataclass(frozen=True)
class PlanEntry:
    name: str
    categories: tuple[str, ...]
    epochs: int
    max_minutes: float = 15.0


# Epochs sized so each single-class model trains in well under 15 minutes on two CPU cores (the
# paper's 200 epochs of 16-image batches would take hours here); warm-up 20 steps.
PLAN = (
    PlanEntry("bottle", ("bottle",), epochs=40),  # 60 images: 3 steps an epoch
    PlanEntry("glass", ("glass",), epochs=150),  # 10 images: one 10-image step an epoch
    PlanEntry("cookie", ("cookie",), epochs=150),  # 16 images: one step an epoch
    PlanEntry("multi", ("bottle", "glass", "cookie"), epochs=40, max_minutes=25.0),  # 86 images: 5 steps
)
PLAN_NAMES = tuple(entry.name for entry in PLAN)

DESCRIPTION = """\
Quality benchmark on ../shared/datasets (mvtec_ad/bottle, glass_ad/glass, lookout_cookies/cookie):
trains single-class models and one multi-class model on this CPU, evaluates each with the kNN
baseline beside it, and writes benchmark.json / benchmark.md."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--datasets", type=Path, default=Path("../shared/datasets"), help="MVTec-layout sets")
    parser.add_argument("--out", type=Path, default=Path("runs/benchmark"), help="models and reports")
    parser.add_argument("--epochs", type=int, default=None, help="override the per-set epochs of the plan")
    parser.add_argument(
        "--only", action="append", default=None, choices=PLAN_NAMES, help="run only these plan entries"
    )
    parser.add_argument("--quiet", action="store_true")
    add_results_argument(parser)


def link_categories(datasets: Path, data_dir: Path, categories: tuple[str, ...]) -> Path:
    """One MVTec-layout root holding the categories, as symlinks (the images are never copied)."""
    sources = {category: (datasets / SETS[category] / category).resolve() for category in categories}
    missing = [str(source) for source in sources.values() if not source.is_dir()]
    if missing:
        raise DataError(
            f"{', '.join(missing)} not found",
            fix="--datasets must point at the shared sets (mvtec_ad/, glass_ad/, lookout_cookies/)",
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    for category, source in sources.items():
        link = data_dir / category
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(source, target_is_directory=True)
    return data_dir


def run_entry(entry: PlanEntry, data_root: Path, out: Path, epochs: int | None, progress: bool) -> dict:
    from export.commands.evaluate import evaluate_job
    from export.evaluate import EvalSettings
    from export.train import TrainConfig, train

    config = TrainConfig(
        data_root=data_root,
        categories=entry.categories,
        epochs=epochs or entry.epochs,
        warmup_steps=20,
        max_minutes=entry.max_minutes,
        out_dir=out / entry.name,
    )
    result = train(config, progress=progress)
    report, _, _ = evaluate_job(
        result.checkpoint_path, out / entry.name / "eval", settings=EvalSettings(progress=progress)
    )
    return {
        "categories": report["categories"],
        "mean": report["mean"],
        "train": {
            "minutes": round(result.seconds / 60, 2),
            "steps": result.steps,
            "epochs": round(result.epochs_done, 2),
            "stop_reason": result.stop_reason,
            "final_loss": result.final_loss,
        },
        "evaluate_s": report["timing_s"]["evaluate"],
    }


def run_benchmark(
    datasets: Path,
    out: Path,
    *,
    epochs: int | None = None,
    only: list[str] | None = None,
    progress: bool = True,
) -> tuple[dict, Path, Path]:
    """Train and evaluate the plan's entries; the results document and where its JSON / Markdown went."""
    entries = [entry for entry in PLAN if not only or entry.name in only]
    needed = tuple(sorted({category for entry in entries for category in entry.categories}))
    data_root = link_categories(Path(datasets), Path(out) / "data", needed)
    results = {entry.name: run_entry(entry, data_root, Path(out), epochs, progress) for entry in entries}
    doc = {
        "command": command_line(),
        "created_utc": utc_now(),
        "encoder": "efficientnet_lite0",
        "models": results,
    }
    json_path = write_json(Path(out) / "benchmark.json", doc)
    md_path = write_text_atomic(Path(out) / "benchmark.md", render(doc))
    return doc, json_path, md_path


def _pct(value) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def render(doc: dict) -> str:
    lines = [
        f"Benchmark ({doc['created_utc']}), encoder {doc['encoder']}: `{doc['command']}`",
        "",
        "| model | category | I-AUROC | P-AUROC | AUPRO | P-AP | kNN I-AUROC | kNN P-AUROC | kNN AUPRO | train min |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, model in doc["models"].items():
        for category, result in model["categories"].items():
            ours, knn = result["inp_former"], result.get("knn") or {}
            pixel, knn_pixel = ours.get("pixel") or {}, knn.get("pixel") or {}
            lines.append(
                f"| {name} | {category} | {_pct(ours['image']['auroc'])} | {_pct(pixel.get('auroc'))} | "
                f"{_pct(pixel.get('aupro'))} | {_pct(pixel.get('ap'))} | {_pct(knn.get('image', {}).get('auroc'))} | "
                f"{_pct(knn_pixel.get('auroc'))} | {_pct(knn_pixel.get('aupro'))} | {model['train']['minutes']} |"
            )
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    doc, json_path, md_path = run_benchmark(
        args.datasets, args.out, epochs=args.epochs, only=args.only, progress=not args.quiet
    )
    print(render(doc))
    print(f"written: {json_path} and {md_path}")
    write_results(args.results, doc)
    return 0


COMMAND = Command(
    name="benchmark",
    help="quality benchmark on the shared real image sets",
    description=DESCRIPTION,
    add_arguments=add_arguments,
    run=run,
)
