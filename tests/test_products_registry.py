"""The product registry on real files: versions, CURRENT, rollback, refusals with their fixes."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml

from edge.decision import Thresholds
from edge.products.product import PRODUCT_SCHEMA, CalibrationRecord, MapNorm, Product, ProductError
from edge.products.registry import ProductRegistry
from tests.registry_support import MODEL_SHA, OTHER_SHA, make_product


def memory_of(tokens: int = 64, channels: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((tokens, channels)).astype(np.float32)


def product_yaml(state: Path, name: str = "cookie", version: int = 1) -> Path:
    return state / "products" / name / f"v{version:04d}" / "product.yaml"


def _edit_product_yaml(state: Path, edit: Callable[[dict], object]) -> Path:
    """Edit the saved cookie v1's product.yaml in place (as a hand or another tool might); its path."""
    path = product_yaml(state)
    data = yaml.safe_load(path.read_text())
    edit(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_product_without_memory_round_trips(tmp_path: Path) -> None:
    registry = ProductRegistry(tmp_path)
    saved = registry.save(make_product(), note="enrolled")
    assert saved.version == 1 and saved.label() == "cookie v1"
    loaded = registry.load("cookie")
    assert loaded == saved and loaded.memory is None
    assert (tmp_path / "products" / "cookie" / "CURRENT").read_text().strip() == "1"
    assert sorted(p.name for p in product_yaml(tmp_path).parent.iterdir()) == ["product.yaml"]


def test_product_with_memory_round_trips_exactly(tmp_path: Path) -> None:
    registry = ProductRegistry(tmp_path)
    memory = memory_of()
    saved = registry.save(make_product(memory=memory))
    loaded = registry.load("cookie")
    assert loaded == saved
    assert loaded.memory is not None and loaded.memory.dtype == np.float32
    np.testing.assert_array_equal(loaded.memory, memory)
    assert registry.load("cookie", memory=False).memory is None


def test_numpy_values_are_stored_as_plain_yaml(tmp_path: Path) -> None:
    product = make_product()
    product = replace(
        product,
        thresholds=Thresholds(np.float32(2.5), np.float64(3.0), 0.0, 0.0, "quantile"),
        enrollment={"shots": np.int64(5), "scores": (np.float32(0.25), 1.0)},
    )
    ProductRegistry(tmp_path).save(product)
    data = yaml.safe_load(product_yaml(tmp_path).read_text())
    assert data["thresholds"]["image"] == 2.5 and data["enrollment"] == {"shots": 5, "scores": [0.25, 1.0]}


def test_each_save_is_a_new_current_version_and_history_lists_them(tmp_path: Path) -> None:
    registry = ProductRegistry(tmp_path)
    for image, note in ((1.5, "enrolled"), (1.8, "quantile 0.99"), (2.1, "f1")):
        record = CalibrationRecord("2026-11-30T11:00:00Z", "manual", image, 8, 0, None, None)
        registry.save(make_product().with_thresholds(Thresholds(image, image), record), note=note)
    assert registry.versions("cookie") == [1, 2, 3] and registry.current_version("cookie") == 3
    history = registry.history("cookie")
    assert [(row.version, row.note, row.current, row.image_threshold) for row in history] == [
        (1, "enrolled", False, 1.5),
        (2, "quantile 0.99", False, 1.8),
        (3, "f1", True, 2.1),
    ]
    assert all(row.saved_at.endswith("Z") for row in history)
    assert registry.load("cookie", version=1).thresholds.image == 1.5
    assert registry.load("cookie").thresholds.image == 2.1


def test_rollback_appends_a_new_version_with_the_old_content(tmp_path: Path) -> None:
    registry = ProductRegistry(tmp_path)
    registry.save(make_product(memory=memory_of(seed=1), image=1.5))
    registry.save(make_product(memory=memory_of(seed=2), image=1.9))
    registry.save(make_product(memory=memory_of(seed=3), image=2.4))
    restored = registry.rollback("cookie")  # the version before the current: v2
    assert restored.version == 4 and registry.versions("cookie") == [1, 2, 3, 4]
    assert registry.current_version("cookie") == 4
    loaded = registry.load("cookie")
    assert loaded.thresholds.image == 1.9
    np.testing.assert_array_equal(loaded.memory, memory_of(seed=2))
    assert (loaded.calibrations[-1].rule, loaded.calibrations[-1].note) == ("rollback", "rolled back to v2")
    assert loaded.calibrations[:-1] == registry.load("cookie", version=2).calibrations
    assert registry.history("cookie")[-1].note == "rollback to v2 (v3 was current)"
    assert registry.rollback("cookie", to_version=1).version == 5
    assert registry.load("cookie").thresholds.image == 1.5
    assert registry.load("cookie", version=3).thresholds.image == 2.4  # history kept


@pytest.mark.parametrize(
    ("saves", "to_version", "message"),
    [
        (1, None, "v1 is the first version"),
        (2, 2, "v2 is already the current version"),
        (2, 7, "has no version 7 (versions: v1, v2)"),
    ],
)
def test_rollback_refusals_name_the_versions(
    tmp_path: Path, saves: int, to_version: int | None, message: str
) -> None:
    registry = ProductRegistry(tmp_path)
    for _ in range(saves):
        registry.save(make_product())
    with pytest.raises(ProductError, match=re.escape(message)):
        registry.rollback("cookie", to_version)
    assert registry.versions("cookie") == list(range(1, saves + 1))


def test_current_file_missing_means_newest_and_damaged_is_named(tmp_path: Path) -> None:
    registry = ProductRegistry(tmp_path)
    registry.save(make_product(image=1.0))
    registry.save(make_product(image=2.0))
    registry.rollback("cookie", to_version=1)
    current = tmp_path / "products" / "cookie" / "CURRENT"
    current.unlink()  # as after a first save killed between the rename and CURRENT
    assert registry.current_version("cookie") == 3
    current.write_text("9\n")
    with pytest.raises(ProductError) as error:
        registry.load("cookie")
    assert str(current) in str(error.value) and "inp-edge products rollback cookie --to N" in str(error.value)
    assert registry.rollback("cookie", to_version=2).version == 4  # --to repairs a damaged CURRENT
    assert registry.load("cookie").thresholds.image == 2.0


def test_model_sha_mismatch_is_refused_with_the_fix(tmp_path: Path) -> None:
    registry = ProductRegistry(tmp_path)
    registry.save(make_product())
    assert registry.load("cookie", model_sha256=MODEL_SHA).version == 1
    with pytest.raises(ProductError) as error:
        registry.load("cookie", model_sha256=OTHER_SHA, model_id="bottle-vitb-20261201")
    text = str(error.value)
    assert "cookie v1" in text and "bottle-effl0-20261122" in text and "bottle-vitb-20261201" in text
    assert MODEL_SHA[:12] in text and OTHER_SHA[:12] in text and MODEL_SHA not in text
    assert error.value.fix.startswith("re-enroll it for this model: inp-edge enroll --product cookie --model")


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (lambda d: d["thresholds"].pop("image"), "thresholds.image is missing"),
        (lambda d: d["thresholds"].update(imag=1.0), "thresholds.imag is not a known key"),
        (lambda d: d.update(extra=1), "extra is not a known key"),
        (lambda d: d["inp_norm"].update(scale="wide"), "inp_norm.scale must be a finite number, got 'wide'"),
        (lambda d: d["good_scores"].update(n=2.5), "good_scores.n must be a whole number"),
        (lambda d: d["calibrations"][0].pop("rule"), "calibrations[0].rule is missing"),
        (lambda d: d.update(fusion="max"), "fusion must be one of fused, inp, memory, got 'max'"),
        (
            lambda d: d.update(memory={"file": "m.npy", "shape": [2, 3], "dtype": "float32"}),
            "memory.file must be",
        ),
        (lambda d: d.pop("model_sha256"), "model_sha256 is missing"),
        (lambda d: d.update(enrollment=[1]), "enrollment must be a mapping"),
    ],
)
def test_bad_product_yaml_names_the_key_and_the_file(tmp_path: Path, edit, named: str) -> None:
    registry = ProductRegistry(tmp_path)
    registry.save(make_product())
    path = _edit_product_yaml(tmp_path, edit)
    with pytest.raises(ProductError) as error:
        registry.load("cookie")
    assert str(error.value).startswith(f"{path}: {named}")
    assert "inp-edge products rollback cookie --to N" in error.value.fix


def test_a_product_written_before_the_projection_was_removed_still_loads(tmp_path: Path) -> None:
    registry = ProductRegistry(tmp_path)
    saved = registry.save(make_product(memory=memory_of()))
    _edit_product_yaml(tmp_path, lambda d: d["memory"].update(projection=None))  # inp-edge up to 179efee
    loaded = registry.load("cookie")
    assert loaded == saved
    np.testing.assert_array_equal(loaded.memory, saved.memory)


def test_a_projected_memory_is_refused_with_the_re_enroll_command(tmp_path: Path) -> None:
    registry = ProductRegistry(tmp_path)
    registry.save(make_product(memory=memory_of()))
    projected = {"file": "projection.npy", "shape": [8, 4]}
    path = _edit_product_yaml(tmp_path, lambda d: d["memory"].update(projection=projected))
    with pytest.raises(ProductError) as error:
        registry.load("cookie")
    assert str(error.value).startswith(f"{path}: memory.projection")
    assert "inp-edge enroll --product cookie" in error.value.fix


def test_newer_schema_is_refused_with_the_fix(tmp_path: Path) -> None:
    data = make_product().to_yaml_dict() | {"schema": PRODUCT_SCHEMA + 1, "colour_norm": {}}
    with pytest.raises(ProductError, match="schema 2 is newer than this inp-edge reads") as error:
        Product.from_yaml_dict(data, Path("product.yaml"))
    assert "update inp-edge" in error.value.fix


def test_from_yaml_dict_reads_what_to_yaml_dict_writes() -> None:
    product = make_product()
    assert Product.from_yaml_dict(yaml.safe_load(yaml.safe_dump(product.to_yaml_dict())), "p.yaml") == product


@pytest.mark.parametrize(
    "name", ["..", ".", "../etc", "a/b", "", "-x", ".hidden", "x" * 65, "caf\u00e9", "a b"]
)
def test_names_that_are_not_safe_folder_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ProductError, match="is not allowed"):
        make_product(name)
    registry = ProductRegistry(tmp_path)
    with pytest.raises(ProductError, match="is not allowed"):
        registry.load(name)
    with pytest.raises(ProductError, match="is not allowed"):
        registry.rollback(name)
    assert not (tmp_path / "products").exists()


def test_unknown_product_says_which_exist(tmp_path: Path) -> None:
    registry = ProductRegistry(tmp_path)
    registry.save(make_product("cookie"))
    registry.save(make_product("biscuit_2.b"))
    assert registry.names() == ["biscuit_2.b", "cookie"] and not registry.exists("cake")
    with pytest.raises(
        ProductError, match=r"no product 'cake' in .* \(products there: biscuit_2.b, cookie\)"
    ):
        registry.load("cake")


def test_leftover_temp_folder_is_ignored_then_removed_by_the_next_save(tmp_path: Path) -> None:
    registry = ProductRegistry(tmp_path)
    registry.save(make_product(image=1.0))
    folder = tmp_path / "products" / "cookie"
    leftover = folder / ".v0002.tmp-4242"
    leftover.mkdir()
    (leftover / "product.yaml").write_text("schema: 1\nname: coo")  # cut short by a kill -9
    (folder / ".CURRENT.k2j3h.tmp").write_text("2")
    assert registry.versions("cookie") == [1] and registry.load("cookie").thresholds.image == 1.0
    assert registry.save(make_product(image=2.0)).version == 2
    assert not leftover.exists() and not (folder / ".CURRENT.k2j3h.tmp").exists()
    assert registry.load("cookie").thresholds.image == 2.0


def test_folder_with_only_a_temp_folder_is_not_a_product(tmp_path: Path) -> None:
    (tmp_path / "products" / "cookie" / ".v0001.tmp-77").mkdir(parents=True)
    registry = ProductRegistry(tmp_path)
    assert registry.names() == [] and not registry.exists("cookie")
    assert registry.save(make_product()).version == 1


@pytest.mark.parametrize(
    ("damage", "named"),
    [
        (lambda v: (v / "memory.npy").unlink(), "memory.npy is missing"),
        (
            lambda v: (v / "memory.npy").write_bytes((v / "memory.npy").read_bytes()[:500]),
            "memory.npy cannot be read",
        ),
        (lambda v: (v / "product.yaml").unlink(), "product.yaml is missing"),
        (lambda v: (v / "product.yaml").write_text("schema: [1"), "product.yaml cannot be read"),
    ],
)
def test_incomplete_version_folder_is_named(tmp_path: Path, damage, named: str) -> None:
    registry = ProductRegistry(tmp_path)
    registry.save(make_product(memory=memory_of()))
    version = tmp_path / "products" / "cookie" / "v0001"
    damage(version)
    with pytest.raises(ProductError, match=f"{version} is incomplete or damaged: {named}"):
        registry.load("cookie")


def test_memory_fusion_without_memory_is_not_saved(tmp_path: Path) -> None:
    product = replace(make_product(), fusion="memory", memory_norm=MapNorm(0.0, 1.0))
    with pytest.raises(ProductError, match="scores with the few-shot memory, and the product has none"):
        ProductRegistry(tmp_path).save(product)
    with pytest.raises(ProductError, match="needs the memory's normalisation"):
        replace(make_product(), fusion="fused")


@pytest.mark.parametrize(
    "memory", [np.zeros((4, 3), np.float64), np.zeros(12, np.float32), np.zeros((0, 3), np.float32)]
)
def test_memory_must_be_a_float32_token_matrix(memory: np.ndarray) -> None:
    with pytest.raises(ProductError, match="memory must be a non-empty"):
        make_product(memory=memory)


def test_concurrent_saves_get_distinct_whole_versions(tmp_path: Path) -> None:
    registry = ProductRegistry(tmp_path)

    def save_some(offset: float) -> None:
        for index in range(5):
            ProductRegistry(tmp_path).save(make_product(image=offset + index))

    threads = [threading.Thread(target=save_some, args=(offset,)) for offset in (10.0, 20.0)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert registry.versions("cookie") == list(range(1, 11)) and registry.current_version("cookie") == 10
    images = sorted(registry.load("cookie", version=number).thresholds.image for number in range(1, 11))
    assert images == [10.0, 11.0, 12.0, 13.0, 14.0, 20.0, 21.0, 22.0, 23.0, 24.0]
