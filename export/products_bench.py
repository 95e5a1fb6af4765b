"""Products on a deployed model, measured: enroll with the device's code, score test sets, metrics.

The model outputs of every image are computed once (the artifact through edge's session code, fed
the exact pre-processing the device uses), then the device's own enrollment (edge/products/enroll.py)
and scoring (edge/products/scoring.py) run on them, so the figures are what a station would get.

- ``unseen``: a category the model never saw, enrolled from K of its training images (several seeds
  for which K), scored on its whole test split.
- ``trained``: a category the model was trained on, enrolled from all its training images (its
  memory then comes from its training parts), scored on its test split.

For each, three scorings of the same enrollment: the INP-Former map alone (``inp``), the memory
alone (``memory``) and their fusion (``fused``); image AUROC, pixel AUROC, AUPRO, and the
false-reject and escape rates of the test split at the threshold enrollment set.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.errors import ModelContractError
from edge.model import contract
from edge.model.session import LoadedModel, run_model
from edge.products.calibration import tail_rule
from edge.products.enroll import Enrolled, EnrollSettings, Shot, enroll_product
from edge.products.product import FUSIONS, Product
from edge.products.scoring import ProductScorer
from export.data import MvtecDataset
from export.evaluate import masks_at_map_size
from export.map_sweep import sweep_map_forms
from export.metrics import image_metrics, pixel_metrics
from export.onnx_eval import artifact_transform, to_uint8_nhwc

OUTPUTS = (contract.OUTPUT_ANOMALY_MAP, contract.OUTPUT_PRED_SCORE, contract.OUTPUT_PATCH_FEATURES)


@dataclass(frozen=True)
class Outputs:
    """The model's outputs on one split of one category."""

    names: tuple[str, ...]
    maps: np.ndarray  # (n, H, W) float32
    features: np.ndarray  # (n, N, C) float32
    labels: np.ndarray  # (n,) 0 good, 1 defective
    masks: np.ndarray  # (n, H, W) bool (all False on the train split)
    model_ms: tuple[float, ...]


def check_patch_features(loaded: LoadedModel) -> None:
    """Products score with the memory of patch features: refuse a model without that output."""
    if contract.OUTPUT_PATCH_FEATURES not in loaded.info.optional_outputs:
        raise ModelContractError(
            f"model {loaded.info.path} has no {contract.OUTPUT_PATCH_FEATURES} output",
            fix="re-export it with `inp-export export --checkpoint CHECKPOINT --out MODEL.onnx` (it writes "
            "patch_features)",
        )


def model_outputs(
    loaded: LoadedModel, root: Path, category: str, split: str, tick: Callable[[], None] | None = None
) -> Outputs:
    """Run the artifact on every image of ``<root>/<category>/<split>`` (map, score, patch features)."""
    check_patch_features(loaded)
    dataset = MvtecDataset(root, category, split, artifact_transform(loaded.info.meta))
    maps, features, labels, masks, times, names = [], [], [], [], [], []
    for index in range(len(dataset)):
        sample = dataset[index]
        started = time.perf_counter()
        out = run_model(loaded, to_uint8_nhwc(sample.image), OUTPUTS)
        times.append((time.perf_counter() - started) * 1e3)
        maps.append(out[contract.OUTPUT_ANOMALY_MAP][0].astype(np.float32))
        features.append(out[contract.OUTPUT_PATCH_FEATURES][0].astype(np.float32))
        labels.append(sample.label)
        masks.append(masks_at_map_size([sample], maps[-1].shape[-1])[0])
        names.append(Path(dataset.entries[index].path).name)
        if tick:
            tick()
    return Outputs(
        tuple(names), np.stack(maps), np.stack(features), np.array(labels), np.stack(masks), tuple(times)
    )


def enroll_shots(
    name: str, train: Outputs, indices: Sequence[int], loaded: LoadedModel, settings: EnrollSettings
) -> Enrolled:
    shots = [Shot(train.names[i], train.maps[i], train.features[i]) for i in indices]
    return enroll_product(name, shots, loaded.info, settings, source=f"{len(shots)} training images")


def evaluate_fusions(
    name: str, train: Outputs, indices: Sequence[int], loaded: LoadedModel, test: Outputs, max_tokens: int
) -> tuple[dict[str, dict], Enrolled]:
    """Each fusion enrolled from the same parts and scored on a test split (each with its own
    enrollment threshold); also the fused enrollment (its product and build time)."""
    results, fused = {}, None
    others = [i for i in range(len(train.labels)) if i not in set(indices)]
    for fusion in FUSIONS:
        settings = EnrollSettings(fusion=fusion, max_memory_tokens=max_tokens)
        enrolled = enroll_shots(name, train, indices, loaded, settings)
        results[fusion] = evaluate_product(enrolled.product, loaded, test, train, others)
        results[fusion]["flagged"] = [flag.label for flag in enrolled.flagged]
        if fusion == "fused":
            fused = enrolled
    assert fused is not None  # FUSIONS has "fused"
    return results, fused


def evaluate_product(
    product: Product,
    loaded: LoadedModel,
    test: Outputs,
    train: Outputs | None = None,
    good: Sequence[int] = (),
) -> dict:
    """Metrics and rates on the test split at the product's threshold; with ``good`` (training parts not
    enrolled) also at the threshold a recalibration on them gives (``calibrated``)."""
    scorer = ProductScorer(product, loaded.info)
    scored = [scorer.score_maps(test.maps[i], test.features[i]) for i in range(len(test.labels))]
    scores = np.array([s.score for s in scored])
    maps = np.stack([s.product_map for s in scored])
    image = image_metrics(scores, test.labels)
    pixel = pixel_metrics(maps, test.masks)
    result = {
        "image_auroc": image.auroc,
        "pixel_auroc": pixel.auroc,
        "aupro": pixel.aupro,
        **rates_at(product.thresholds.image, scores, test.labels),
        "scoring_ms_p50": float(np.median([s.scoring_ms for s in scored])),
    }
    if train is not None and good:
        # recalibration on the line, simulated: the training parts not enrolled are the parts confirmed
        # good; the tail rule (the service's default) on their scores gives the threshold
        rule = tail_rule([scorer.score_maps(train.maps[i], train.features[i]).score for i in good])
        result["calibrated"] = {
            "rule": rule.rule,
            "n_good": len(good),
            **rates_at(rule.threshold, scores, test.labels),
        }
    return result


def rates_at(threshold: float, scores: np.ndarray, labels: np.ndarray) -> dict:
    good, bad = scores[labels == 0], scores[labels == 1]
    return {
        "threshold": threshold,
        "false_reject_rate": float(np.mean(good > threshold)) if len(good) else None,
        "escape_rate": float(np.mean(bad <= threshold)) if len(bad) else None,
    }


def _category_outputs(loaded: LoadedModel, folder: Path, quiet: bool) -> tuple[Outputs, Outputs]:
    from tqdm import tqdm

    outputs = []
    for split in ("train", "test"):
        with tqdm(desc=f"{folder.name} {split}", unit="img", disable=quiet) as bar:
            outputs.append(model_outputs(loaded, folder.parent, folder.name, split, bar.update))
    return outputs[0], outputs[1]


def _shot_choices(count: int, k: int, seeds: int) -> list[list[int]]:
    """``seeds`` choices of k of ``count`` training images (seeded, so a rerun picks the same)."""
    return [
        sorted(int(i) for i in np.random.default_rng(seed).choice(count, k, replace=False))
        for seed in range(seeds)
    ]


def run_study(
    loaded: LoadedModel,
    unseen: Sequence[Path],
    trained: Sequence[Path],
    shots: Sequence[int],
    seeds: int,
    max_tokens: int,
    *,
    quiet: bool = False,
    map_sweep: bool = False,
) -> dict:
    """Every enrollment and its scores; the JSON body of products.json. ``map_sweep``: each fused
    enrollment's test split also scored with every map form of export/map_sweep.py."""
    rows, model_ms, scoring_ms = [], [], []
    for folder, kind in [*((f, "unseen") for f in unseen), *((f, "trained") for f in trained)]:
        train, test = _category_outputs(loaded, folder, quiet)
        model_ms.extend(test.model_ms)
        if kind == "trained":
            plans = [(len(train.labels), 0, list(range(len(train.labels))))]
        else:
            plans = [(k, seed, pick) for k in shots if k <= len(train.labels)
                     for seed, pick in enumerate(_shot_choices(len(train.labels), k, seeds))]  # fmt: skip
        for k, seed, pick in plans:
            results, fused = evaluate_fusions(folder.name, train, pick, loaded, test, max_tokens)
            scoring_ms.append(results["fused"]["scoring_ms_p50"])
            rows.append({"category": folder.name, "kind": kind, "k": k, "seed": seed,
                         "shots": [train.names[i] for i in pick], "enroll_s": fused.build_s, "fusions": results})  # fmt: skip
            if map_sweep:
                rows[-1]["map_sweep"] = sweep_map_forms(
                    fused.product, loaded, test.maps, test.features, test.masks
                )
    return {"rows": rows, "summary": summarise(rows), "latency": _latency(model_ms, scoring_ms)}


def _latency(model_ms: Sequence[float], scoring_ms: Sequence[float]) -> dict:
    model, scoring = float(np.median(model_ms)), float(np.median(scoring_ms))
    return {"model_ms_p50": model, "fused_scoring_ms_p50": scoring, "scoring_share_of_model": scoring / model}


METRICS = ("image_auroc", "pixel_auroc", "aupro", "false_reject_rate", "escape_rate")
CALIBRATED = ("false_reject_rate", "escape_rate")


def summarise(rows: Sequence[dict]) -> list[dict]:
    """Mean and standard deviation over seeds, per category, K and fusion."""
    groups: dict[tuple[str, str, int], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["category"], row["kind"], row["k"]), []).append(row)
    summary = []
    for (category, kind, k), members in groups.items():
        entry: dict = {"category": category, "kind": kind, "k": k, "seeds": len(members),
                       "enroll_s_max": max(m["enroll_s"] for m in members)}  # fmt: skip
        for fusion in FUSIONS:
            calibrated = [
                m["fusions"][fusion]["calibrated"] for m in members if "calibrated" in m["fusions"][fusion]
            ]
            for metric in CALIBRATED:
                if calibrated:
                    entry[f"{fusion}.calibrated.{metric}"] = float(np.mean([c[metric] for c in calibrated]))
            for metric in METRICS:
                values = [
                    m["fusions"][fusion][metric] for m in members if m["fusions"][fusion][metric] is not None
                ]
                if values:
                    entry[f"{fusion}.{metric}"] = float(np.mean(values))
                    entry[f"{fusion}.{metric}.std"] = float(np.std(values))
        summary.append(entry)
    return summary


def table(document: dict) -> str:
    """Markdown: one line per category and K, the three scorings side by side (mean over seeds)."""
    head = (
        "| product | K | seeds | image AUROC inp / memory / fused | pixel AUROC inp / memory / fused "
        "| AUPRO inp / memory / fused | fused FRR / escape, enrollment threshold "
        "| fused FRR / escape, calibrated | enroll s |"
    )
    lines = [head, "|" + "---|" * 9]
    for e in document["summary"]:

        def three(metric: str, e: dict = e) -> str:
            return " / ".join(f"{100 * e[f'{f}.{metric}']:.1f}" for f in ("inp", "memory", "fused"))

        def rates(prefix: str, e: dict = e) -> str:
            if f"{prefix}.false_reject_rate" not in e:
                return "-"
            return (
                f"{100 * e[f'{prefix}.false_reject_rate']:.1f} % / {100 * e[f'{prefix}.escape_rate']:.1f} %"
            )

        lines.append(f"| {e['category']} ({e['kind']}) | {e['k']} | {e['seeds']} | {three('image_auroc')} | "
                     f"{three('pixel_auroc')} | {three('aupro')} | {rates('fused')} | {rates('fused.calibrated')} "
                     f"| {e['enroll_s_max']:.1f} |")  # fmt: skip
    lat = document["latency"]
    lines.append(f"\nfused scoring {lat['fused_scoring_ms_p50']:.1f} ms vs model {lat['model_ms_p50']:.1f} ms "
                 f"per part (medians, same run): {100 * lat['scoring_share_of_model']:.1f} % of the model run")  # fmt: skip
    return "\n".join(lines)
