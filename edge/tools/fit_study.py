"""How should a non-square region of interest become the model's square? Measured, not assumed.

``python -m edge.tools.fit_study MODEL.onnx CATEGORY_DIR --out docs/results/fit-study.json``

Each test image of an MVTec-layout category (square, as the model was trained) is put into a wider
camera frame by extending its left and right borders (edge pixels repeated), so the part sits in a
non-square region of aspect ``--aspect`` (width / height). The station's ROI is that whole region.
Image AUROC is then measured, through the device's own Detector, for:

- ``square``: the ROI is the square part region only (what training saw; the reference);
- ``stretch``: the non-square ROI resized to the square, aspect ratio not kept (the part is squashed);
- ``letterbox``: the non-square ROI scaled to fit, aspect ratio kept, padded with the mean colour.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from edge.atomic import write_text_atomic
from edge.camera.frame import Frame
from edge.model.detector import Detector, DetectorSettings
from edge.model.preprocess import Roi
from edge.model.session import SessionSettings, open_session

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve by the rank-sum (Mann-Whitney) formula, ties counted half."""
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), np.float64)
    sorted_scores = scores[order]
    start = 0
    while start < len(scores):
        end = start
        while end + 1 < len(scores) and sorted_scores[end + 1] == sorted_scores[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2.0 + 1.0
        start = end + 1
    positives = labels.astype(bool)
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def test_images(category_dir: Path) -> list[tuple[Path, int]]:
    found = []
    for folder in sorted((category_dir / "test").iterdir()):
        label = 0 if folder.name == "good" else 1
        found += [(path, label) for path in sorted(folder.iterdir()) if path.suffix.lower() in IMAGE_SUFFIXES]
    return found


def widen(rgb: np.ndarray, aspect: float) -> tuple[np.ndarray, Roi, Roi]:
    """The image inside a wider frame (borders repeated); (frame, square ROI, non-square ROI)."""
    height, width = rgb.shape[:2]
    extra = int(round(height * aspect)) - width
    left = extra // 2
    frame = cv2.copyMakeBorder(rgb, 0, 0, left, extra - left, cv2.BORDER_REPLICATE)
    return frame, Roi(left, 0, width, height), Roi(0, 0, frame.shape[1], height)


def study(model: Path, category_dir: Path, aspect: float, limit: int | None = None) -> dict:
    loaded = open_session(model, SessionSettings(providers=("cpu",)))
    images = test_images(category_dir)[:limit]
    scores: dict[str, list[float]] = {"square": [], "stretch": [], "letterbox": []}
    for index, (path, _) in enumerate(images):
        rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        frame_image, square_roi, wide_roi = widen(rgb, aspect)
        frame = Frame(index, 0, 0, frame_image)
        for name, roi, fit in (("square", square_roi, "stretch"), ("stretch", wide_roi, "stretch"),
                               ("letterbox", wide_roi, "letterbox")):  # fmt: skip
            scores[name].append(Detector(loaded, DetectorSettings(roi=roi, fit=fit)).infer(frame).raw_score)
        print(f"\r{index + 1}/{len(images)} images", end="", file=sys.stderr)
    print(file=sys.stderr)
    labels = np.array([label for _, label in images])
    return {
        "model": str(model),
        "model_id": loaded.info.model_id,
        "category": category_dir.name,
        "aspect": aspect,
        "images": len(images),
        "defective": int(labels.sum()),
        "image_auroc": {name: auroc(np.array(values), labels) for name, values in scores.items()},
        "command": " ".join(["python -m edge.tools.fit_study", *sys.argv[1:]]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge.tools.fit_study", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("model", type=Path)
    parser.add_argument("category_dir", type=Path, help="MVTec-layout category folder (with test/)")
    parser.add_argument("--aspect", type=float, default=4 / 3, help="width / height of the ROI (default 4/3)")
    parser.add_argument("--limit", type=int, default=None, help="at most this many test images")
    parser.add_argument("--out", type=Path, default=None, help="write the result as JSON here")
    args = parser.parse_args(argv)
    result = study(args.model, args.category_dir, args.aspect, args.limit)
    for name, value in result["image_auroc"].items():
        print(f"{name:<10} image AUROC {100 * value:6.2f}")
    if args.out is not None:
        write_text_atomic(args.out, json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
