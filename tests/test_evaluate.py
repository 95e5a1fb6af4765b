from __future__ import annotations

from pathlib import Path

import pytest

from edge.errors import DataError
from export.data import ImageTransform
from export.evaluate import EvalSettings, knn_memory_images
from export.synthetic import SyntheticSpec, write_synthetic_dataset


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("parts")
    write_synthetic_dataset(folder, SyntheticSpec(size_px=32, n_train=5, n_test_good=1, n_test_defect=1))
    return folder


TRANSFORM = ImageTransform(resize_px=32, crop_px=32)


def test_knn_memory_is_every_training_image_by_default(root: Path) -> None:
    assert len(knn_memory_images(root, "washer", TRANSFORM, EvalSettings())) == 5


def test_few_shot_knn_memory_holds_only_the_recorded_shots(root: Path) -> None:
    settings = EvalSettings(knn_train_files=("washer/train/good/001.png", "washer/train/good/003.png"))
    memory = knn_memory_images(root, "washer", TRANSFORM, settings)
    assert sorted(Path(sample.path).name for sample in memory) == ["001.png", "003.png"]


def test_few_shot_files_of_another_category_are_an_error(root: Path) -> None:
    settings = EvalSettings(knn_train_files=("bottle/train/good/000.png",))
    with pytest.raises(DataError, match="none of the recorded few-shot files belong to 'washer'"):
        knn_memory_images(root, "washer", TRANSFORM, settings)
