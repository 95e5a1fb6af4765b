"""Products inside the running service: the active product, its control commands, the inspect hook.

``ProductStation`` owns the station's product side: the registry (``<state_dir>/products``), the
``ActiveProduct`` the inspect thread reads once per frame, the live calibration and the enrollment.
It is the inspector's observer (``wants_features`` / ``observe``, on the inspect thread: a reference
handed over, nothing computed) and serves the product commands of the control socket (``handlers``,
on the control thread). Every reply is a dict; a wrong request raises ``RequestError`` /
``ProductError`` / ``CalibrationError``, which the control socket turns into an error reply while
the line goes on. docs/messages.md, "Control commands for products", has every request and reply.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

from edge.control import RequestError
from edge.control_args import check_keys, number_arg, text_arg, whole_arg
from edge.decision import ERROR, Thresholds, Verdict
from edge.model.contract_check import ModelInfo
from edge.model.detector import Inference
from edge.products.active import ActiveProduct, Snapshot
from edge.products.calibration import LABELS
from edge.products.enrollment_control import EnrollmentControl
from edge.products.live_calibration import APPLY_RULES, LiveCalibration, calibrated, manual_result
from edge.products.product import Product, ProductError, check_name
from edge.products.registry import ProductRegistry
from edge.products.scoring import Scored

log = logging.getLogger("inp_edge.products")

DEFAULT_WAIT_S = 2.0  # how long a switch waits for the first frame inspected with the new product
MAX_WAIT_S = 30.0
RULE_PARAMS = {"quantile": (0.5, 1.0), "margin": (0.0, 1e6), "target_false_reject": (1e-9, 0.5)}

Handler = Callable[[dict[str, Any]], dict[str, Any]]


def product_summary(product: Product) -> dict[str, Any]:
    t = product.thresholds
    return {
        "name": product.name, "version": product.version, "fusion": product.fusion, "threshold": t.image,
        "pixel_threshold": t.pixel, "threshold_source": t.source, "model_id": product.model_id,
    }  # fmt: skip


class ProductStation:
    def __init__(
        self,
        registry: ProductRegistry,
        active: ActiveProduct,
        *,
        station: str,
        on_change: Callable[[Product | None], None] = lambda product: None,
    ) -> None:
        self.registry = registry
        self.active = active
        self.info: ModelInfo = active.info
        self.station = station
        self._on_change = on_change
        self.calibration = LiveCalibration()
        self.enrollment = EnrollmentControl(
            registry, self.info, station=station, has_patch_features=active.has_patch_features,
            activate=lambda product: self._switch(product),
        )  # fmt: skip

    def load_configured(self, name: str, fallback: Thresholds) -> Product | None:
        """Start-up: the configured product when its folder exists (checked against the model), else None."""
        if not self.registry.exists(name):
            log.info(
                "no product folder for %r in %s: using the station's thresholds (%s)",
                name, self.registry.root, fallback.source,
            )  # fmt: skip
            return None
        product = self.registry.load(name, model_sha256=self.info.sha256, model_id=self.info.model_id)
        self._switch(product)
        return product

    # --- the inspect thread ---

    def wants_features(self) -> bool:
        return self.enrollment.wants_features()

    def observe(
        self, verdict: Verdict, inference: Inference, scored: Scored | None, snapshot: Snapshot
    ) -> None:
        if verdict.verdict == ERROR:
            return
        self.enrollment.offer(verdict.frame_id, inference)
        if scored is None or snapshot.product is None or self.calibration.label is None:
            return
        if math.isfinite(scored.score):  # a broken score is a fail verdict, not a calibration sample
            self.calibration.offer(scored.score, snapshot.product, verdict.frame_id)

    # --- the control thread ---

    def handlers(self) -> dict[str, Handler]:
        return {
            "product": self.product, "products": self.products, **self.enrollment.handlers(),
            "calibrate_start": self.calibrate_start, "calibrate_stop": self.calibrate_stop,
            "calibrate_clear": self.calibrate_clear, "preview": self.preview, "apply": self.apply,
            "rollback": self.rollback,
        }  # fmt: skip

    def status_fields(self) -> dict[str, Any]:
        product = self.active.snapshot().product
        return {
            "product": None if product is None else product_summary(product),
            "enrollment": self.enrollment.status(),
            "calibration": self.calibration.status(),
        }

    def product(self, request: dict[str, Any]) -> dict[str, Any]:
        """switch the active product from the next frame: name, version?, wait_s?"""
        check_keys(request, ("name", "version", "wait_s"))
        name = check_name(text_arg(request, "name"))
        version = whole_arg(request, "version", minimum=1, default=None)
        wait_s = number_arg(request, "wait_s", low=0.0, high=MAX_WAIT_S, default=DEFAULT_WAIT_S)
        product = self.registry.load(
            name, version=version, model_sha256=self.info.sha256, model_id=self.info.model_id
        )
        return self._activate(product, wait_s)

    def products(self, request: dict[str, Any]) -> dict[str, Any]:
        """the products in the registry (current version of each) and the active one"""
        check_keys(request, ())
        found = []
        for name in self.registry.names():
            try:
                product = self.registry.load(name, memory=False)
            except ProductError as exc:  # one broken product must not hide the others
                found.append({"name": name, "error": exc.message, "fix": exc.fix})
                continue
            summary = product_summary(product)
            found.append({**summary, "fits_model": product.model_sha256 == self.info.sha256})
        active = self.active.snapshot().product
        return {"products": found, "active": None if active is None else active.name}

    def calibrate_start(self, request: dict[str, Any]) -> dict[str, Any]:
        """collect the active product's scores of the following parts with a label: good or bad"""
        check_keys(request, ("label",))
        label = text_arg(request, "label", choices=LABELS)
        self.calibration.start(label, self._require_active("calibrate_start"))
        log.info("calibration: collecting %s parts", label)
        return self.calibration.status()

    def calibrate_stop(self, request: dict[str, Any]) -> dict[str, Any]:
        """stop collecting scores (the scores are kept)"""
        check_keys(request, ())
        self.calibration.stop()
        return self.calibration.status()

    def calibrate_clear(self, request: dict[str, Any]) -> dict[str, Any]:
        """drop the collected scores"""
        check_keys(request, ())
        self.calibration.clear()
        return self.calibration.status()

    def preview(self, request: dict[str, Any]) -> dict[str, Any]:
        """the threshold each rule gives on the collected scores: quantile?, margin?, target_false_reject?"""
        check_keys(request, tuple(RULE_PARAMS))
        product = self._require_active("preview")
        self.calibration.check_product(product, "preview")
        results = self.calibration.preview(_rule_params(request))
        return {
            "rules": [_rule_dict(result) for result in results],
            "counts": self.calibration.collector.counts(),
            "current_threshold": product.thresholds.image,
            "product": product.label(),
        }

    def apply(self, request: dict[str, Any]) -> dict[str, Any]:
        """give the active product a rule's threshold, saved as a new version: rule, params?, wait_s?"""
        check_keys(request, ("rule", "threshold", "wait_s", *RULE_PARAMS))
        rule = text_arg(request, "rule", choices=APPLY_RULES)
        wait_s = number_arg(request, "wait_s", low=0.0, high=MAX_WAIT_S, default=DEFAULT_WAIT_S)
        product = self._require_active("apply")
        self.calibration.check_product(product, "apply")
        collector = self.calibration.collector
        if rule == "manual":
            threshold = number_arg(request, "threshold", low=-1e9, high=1e9)
            result = manual_result(threshold, collector.good(), collector.bad())
        elif "threshold" in request:
            raise RequestError("apply: 'threshold' goes with rule manual only", fix='use "rule": "manual"')
        else:
            result = self.calibration.result(rule, _rule_params(request))
        saved = self.registry.save(
            calibrated(product, result, collector.counts()), note=f"{rule} threshold via the control socket"
        )
        log.info(
            "product %s: %s threshold %.6g applied (%s)", saved.label(), rule, result.threshold, result.note
        )
        return {**self._activate(saved, wait_s), "rule": _rule_dict(result)}

    def rollback(self, request: dict[str, Any]) -> dict[str, Any]:
        """make an earlier version of the active product current again (as a new version): to_version?"""
        check_keys(request, ("to_version", "wait_s"))
        wait_s = number_arg(request, "wait_s", low=0.0, high=MAX_WAIT_S, default=DEFAULT_WAIT_S)
        name = self._require_active("rollback").name
        current = self.registry.current_version(name)
        target = whole_arg(request, "to_version", minimum=1, default=None)
        if target is None:
            earlier = [version for version in self.registry.versions(name) if version < current]
            if not earlier:
                raise RequestError(
                    f"rollback: {name} v{current} is its first version", fix="nothing to roll back to"
                )
            target = earlier[-1]
        # refuse a version this model cannot score BEFORE a new version is written
        self.registry.load(name, version=target, model_sha256=self.info.sha256, model_id=self.info.model_id)
        restored = self.registry.rollback(name, target)
        log.info("product %s rolled back to v%d as %s", name, target, restored.label())
        return {**self._activate(restored, wait_s), "rolled_back_to": target}

    def _require_active(self, command: str) -> Product:
        product = self.active.snapshot().product
        if product is None:
            raise RequestError(
                f"{command}: no product is active (the station uses its own thresholds)",
                fix='activate one first: {"cmd": "product", "name": "..."} (or enroll one: enroll_start)',
            )
        return product

    def _switch(self, product: Product) -> int:
        generation = self.active.switch(product)
        self._on_change(product)
        t = product.thresholds
        log.info(
            "product %s active from the next frame (fusion %s, threshold %.6g, pixel %.6g; %s)",
            product.label(), product.fusion, t.image, t.pixel, t.source,
        )  # fmt: skip
        return generation

    def _activate(self, product: Product, wait_s: float) -> dict[str, Any]:
        frame_id = self.active.wait_effective(self._switch(product), wait_s)
        return {
            "product": product.name, "version": product.version, "threshold": product.thresholds.image,
            "effective_from_frame": frame_id, "pending": frame_id is None,
        }  # fmt: skip


def _rule_params(request: dict[str, Any]) -> dict[str, float]:
    return {
        name: number_arg(request, name, low=low, high=high)
        for name, (low, high) in RULE_PARAMS.items()
        if request.get(name) is not None
    }


def _rule_dict(result: Any) -> dict[str, Any]:
    return {
        "rule": result.rule, "threshold": result.threshold, "params": dict(result.params),
        "false_reject_rate": result.false_reject_rate, "escape_rate": result.escape_rate,
        "expected_false_reject": result.expected_false_reject, "note": result.note,
    }  # fmt: skip
