"""Evaluation reports: one JSON document for machines, one Markdown page for people.

Report dict schema (version 1; every float metric is a fraction in [0, 1], shown as % in Markdown)::

    {
      "command": str,                  # the command line that produced the report
      "created_utc": str,              # ISO 8601, e.g. "2026-01-31T12:00:00Z"
      "model": {str: scalar, ...},     # free-form summary: encoder, checkpoint, input_size_px, ...
      "categories": {
        <name>: {
          "inp_former": RESULT,
          "knn": RESULT | None,        # None when the baseline was not run
          "n_good": int,               # test images without defects
          "n_defect": int,             # test images with defects
        }, ...
      },
      "mean": {"inp_former": RESULT, "knn": RESULT | None},   # plain mean over categories
      "timing_s": {str: float, ...},   # wall-clock seconds per stage, e.g. "train", "evaluate"
    }
    RESULT = {
      "image": {"auroc": float, "ap": float, "f1_max": float},                  # ImageMetrics
      "pixel": {"auroc": float, "ap": float, "f1_max": float, "aupro": float}   # PixelMetrics
               | None,                                                          # no masks
    }

``mean_result`` builds the "mean" entry from the categories. Non-finite floats are written as
JSON null. Both files are written atomically (temp file, fsync, rename, directory fsync).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from edge.atomic import write_text_atomic

REQUIRED_KEYS = ("command", "created_utc", "model", "categories", "mean", "timing_s")
IMAGE_COLUMNS = (("auroc", "I-AUROC"), ("ap", "I-AP"), ("f1_max", "I-F1max"))
PIXEL_COLUMNS = (("auroc", "P-AUROC"), ("ap", "P-AP"), ("f1_max", "P-F1max"), ("aupro", "AUPRO"))
METHODS = ("inp_former", "knn")


def write_report(report: dict[str, Any], out_dir: Path, stem: str) -> tuple[Path, Path]:
    """Write ``stem.json`` and ``stem.md`` into out_dir; return their paths (JSON first)."""
    _check_schema(report)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / f"{stem}.json"
    md_path = out_dir / f"{stem}.md"
    write_text_atomic(json_path, json_text(report))
    write_text_atomic(md_path, render_markdown(report))
    return json_path, md_path


def mean_result(categories: dict[str, dict[str, Any]], method: str) -> dict[str, Any] | None:
    """Plain mean of each metric over the categories (None if any category lacks the method)."""
    results = [entry.get(method) for entry in categories.values()]
    if not results or any(result is None for result in results):
        return None
    mean: dict[str, Any] = {"image": _mean_level([r["image"] for r in results])}
    pixels = [r.get("pixel") for r in results]
    mean["pixel"] = None if any(p is None for p in pixels) else _mean_level(pixels)
    return mean


def render_markdown(report: dict[str, Any]) -> str:
    """The human page: run summary, then image and pixel tables (model beside kNN baseline)."""
    lines = ["# Evaluation report", "", f"- command: `{report['command']}`"]
    lines.append(f"- created (UTC): {report['created_utc']}")
    lines += [f"- {key}: {value}" for key, value in report["model"].items()]
    timing = ", ".join(f"{stage} {seconds:.1f} s" for stage, seconds in report["timing_s"].items())
    lines += [f"- timing: {timing or 'n/a'}", "", "Values in %: INP-Former beside the kNN baseline.", ""]
    for title, level, columns in (("Image", "image", IMAGE_COLUMNS), ("Pixel", "pixel", PIXEL_COLUMNS)):
        lines += [f"## {title} level", ""] + _table(report, level, columns) + [""]
    return "\n".join(lines)


def _table(report: dict[str, Any], level: str, columns: tuple[tuple[str, str], ...]) -> list[str]:
    header = ["Category", "Good", "Defect"]
    for _, label in columns:
        header += [f"{label} INP", f"{label} kNN"]
    rows = [header, ["---"] * 3 + ["---:"] * (2 * len(columns))]
    for name, entry in report["categories"].items():
        rows.append([name, str(entry["n_good"]), str(entry["n_defect"])] + _cells(entry, level, columns))
    good = sum(int(entry["n_good"]) for entry in report["categories"].values())
    defect = sum(int(entry["n_defect"]) for entry in report["categories"].values())
    rows.append(["**mean**", str(good), str(defect)] + _cells(report["mean"], level, columns))
    return ["| " + " | ".join(row) + " |" for row in rows]


def _cells(entry: dict[str, Any], level: str, columns: tuple[tuple[str, str], ...]) -> list[str]:
    cells = []
    for key, _ in columns:
        for method in METHODS:
            values = (entry.get(method) or {}).get(level) or {}
            cells.append(_percent(values.get(key)))
    return cells


def _percent(value: Any) -> str:
    if value is None or not math.isfinite(float(value)):
        return "–"
    return f"{100.0 * float(value):.1f}"


def _mean_level(levels: list[dict[str, float]]) -> dict[str, float]:
    return {key: sum(float(level[key]) for level in levels) / len(levels) for key in levels[0]}


def _check_schema(report: dict[str, Any]) -> None:
    missing = [key for key in REQUIRED_KEYS if key not in report]
    if missing:
        raise ValueError(f"report is missing key(s) {missing}; see the schema in export/report.py")
    for name, entry in report["categories"].items():
        for key in ("inp_former", "n_good", "n_defect"):
            if key not in entry:
                raise ValueError(
                    f"report['categories'][{name!r}] is missing {key!r}; see the schema in export/report.py"
                )
        if "image" not in entry["inp_former"]:
            raise ValueError(f"report['categories'][{name!r}]['inp_former'] is missing 'image'")


def json_text(document: Any) -> str:
    """THE JSON of every report and results file: indented, non-finite floats as null (strict JSON),
    values JSON does not know (paths) as their text."""
    return json.dumps(_finite_or_null(document), indent=2, allow_nan=False, default=str) + "\n"


def _finite_or_null(value: Any) -> Any:
    if hasattr(value, "item") and hasattr(value, "dtype"):  # NumPy / torch scalars
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(key): _finite_or_null(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_null(item) for item in value]
    return value
