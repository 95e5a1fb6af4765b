"""The fused map's form, measured: pixel AUROC and AUPRO of ways to combine a product's two maps.

``inp-export bench-products --map-sweep`` runs this on each fused enrollment it scores, so every form
sees the same products, test parts and normalisation as the device. The device's form is
``edge.products.scoring.gate`` with gain ``MAP_INP_GAIN`` ("gate 0.2" here); docs/benchmarks.md,
"Products", records the sweep it was chosen by.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from edge.model.session import LoadedModel
from edge.products.product import Product
from edge.products.scoring import ProductScorer, blend, gate
from export.metrics import pixel_metrics

MapForm = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (INP map, memory map) → product map


def _mean(weight: float) -> MapForm:
    return lambda inp, memory: blend(inp, memory, weight)


def _gate(gain: float) -> MapForm:
    return lambda inp, memory: gate(inp, memory, gain)


MAP_FORMS: dict[str, MapForm] = {
    "inp": lambda inp, memory: inp,
    "memory": lambda inp, memory: memory,
    "mean 0.5": _mean(0.5),  # (1 − w) · inp + w · memory
    "mean 0.8": _mean(0.8),
    "mean 0.9": _mean(0.9),
    "max": np.maximum,
    "gate 0.1": _gate(0.1),  # memory + g · max(inp − median(inp), 0) · max(memory, 0)
    "gate 0.2": _gate(0.2),
    "gate 0.3": _gate(0.3),
    "gate 0.5": _gate(0.5),
}


def sweep_map_forms(product: Product, loaded: LoadedModel, maps: np.ndarray, features: np.ndarray,
                    masks: np.ndarray) -> dict[str, dict[str, float]]:  # fmt: skip
    """Each form's pixel AUROC and AUPRO on a test split (the product must have a memory)."""
    scorer = ProductScorer(product, loaded.info)
    pairs = [scorer.normalised_maps(maps[i], features[i]) for i in range(len(maps))]
    results = {}
    for name, form in MAP_FORMS.items():
        fused = np.stack([form(inp, memory) for inp, memory in pairs])
        metrics = pixel_metrics(fused, masks)
        results[name] = {"pixel_auroc": metrics.auroc, "aupro": metrics.aupro}
    return results


def sweep_table(rows: Sequence[dict]) -> str:
    """Markdown: one line per category and K, pixel AUROC / AUPRO of each form (mean over seeds)."""
    groups: dict[tuple[str, str, int], list[dict]] = {}
    for row in rows:
        if "map_sweep" in row:
            groups.setdefault((row["category"], row["kind"], row["k"]), []).append(row["map_sweep"])
    lines = ["| product | K | " + " | ".join(MAP_FORMS) + " |", "|" + "---|" * (len(MAP_FORMS) + 2)]
    for (category, kind, k), sweeps in groups.items():
        cells = []
        for name in MAP_FORMS:
            auroc = np.mean([s[name]["pixel_auroc"] for s in sweeps])
            aupro = np.mean([s[name]["aupro"] for s in sweeps])
            cells.append(f"{100 * auroc:.2f} / {100 * aupro:.1f}")
        lines.append(f"| {category} ({kind}) | {k} | " + " | ".join(cells) + " |")
    return "pixel AUROC / AUPRO of each map form (mean over seeds)\n\n" + "\n".join(lines)
