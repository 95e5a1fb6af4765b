"""The strict reader of ``product.yaml`` (schema ``PRODUCT_SCHEMA``): every key required or defaulted on
purpose, a missing, unknown or mistyped one a ``FieldError`` naming its key path (``Product.from_yaml_dict``
turns it into a ``ProductError`` naming the file and the fix)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge.decision import Thresholds
from edge.products.product import (
    FUSIONS,
    MEMORY_FILE,
    PRODUCT_SCHEMA,
    CalibrationRecord,
    MapNorm,
    Product,
    ProductError,
    ScoreSummary,
)
from edge.products.yaml_fields import Fields


def read_product(fields: Fields, path: str | Path) -> Product:
    """The product a parsed ``product.yaml`` describes (its memory arrays are read by the registry)."""
    schema = fields.integer("schema", minimum=1)
    if schema > PRODUCT_SCHEMA:
        raise ProductError(
            f"product.yaml schema {schema} is newer than this inp-edge reads (schema {PRODUCT_SCHEMA})",
            fix="update inp-edge on this device, or re-enroll the product with this version (inp-edge enroll)",
        )
    product = Product(
        name=fields.text("name"),
        version=fields.integer("version"),
        model_id=fields.text("model_id"),
        model_sha256=fields.text("model_sha256"),
        fusion=fields.choice("fusion", FUSIONS),
        inp_norm=_read_norm(fields.mapping("inp_norm")),
        memory_norm=_read_norm(fields.nullable_mapping("memory_norm")),
        thresholds=_read_thresholds(fields.mapping("thresholds")),
        good_scores=_read_summary(fields.mapping("good_scores")),
        enrollment=fields.free_mapping("enrollment"),  # a free-form summary
        calibrations=tuple(_read_record(item) for item in fields.records("calibrations")),
    )
    fields.text("saved_at")
    fields.text("note")
    _read_memory_entry(fields.nullable_mapping("memory"), product.name)
    fields.done()
    return product


def _read_norm(fields: Fields | None) -> Any:
    if fields is None:
        return None
    norm = MapNorm(center=fields.number("center"), scale=fields.number("scale"))
    fields.done()
    return norm


def _read_thresholds(fields: Fields) -> Thresholds:
    thresholds = Thresholds(
        image=fields.number("image"),
        pixel=fields.number("pixel"),
        min_region_area_px=fields.number("min_region_area_px"),
        center=fields.number("center"),
        source=fields.text("source"),
    )
    fields.done()
    return thresholds


def _read_summary(fields: Fields) -> ScoreSummary:
    numbers = {key: fields.number(key) for key in ("mean", "std", "min", "p50", "max")}
    summary = ScoreSummary(n=fields.integer("n"), **numbers)
    fields.done()
    return summary


def _read_record(fields: Fields) -> CalibrationRecord:
    record = CalibrationRecord(
        at=fields.text("at"),
        rule=fields.text("rule"),
        threshold=fields.number("threshold"),
        n_good=fields.integer("n_good"),
        n_bad=fields.integer("n_bad"),
        expected_false_reject=fields.number("expected_false_reject", nullable=True),
        expected_escape=fields.number("expected_escape", nullable=True),
        note=fields.text("note"),
    )
    fields.done()
    return record


def _read_memory_entry(fields: Fields | None, name: str) -> None:
    if fields is None:
        return
    fields.choice("file", (MEMORY_FILE,))
    fields.choice("dtype", ("float32",))
    fields.dims("shape", 2)
    # inp-edge before 179efee wrote ``projection: null`` here (its off-by-default feature projection,
    # since removed): such a product loads as it was; a projected memory cannot be scored any more
    if fields.raw("projection", None) is not None:
        raise ProductError(
            "memory.projection: this product's memory was enrolled with a feature projection, "
            "which this inp-edge no longer scores",
            fix=f"re-enroll it: inp-edge enroll --product {name} --shots K ...",
        )
    fields.done()
