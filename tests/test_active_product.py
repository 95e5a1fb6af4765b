"""The active product and the inspector: one product per frame, features only when needed, switch acks."""

from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np
import pytest

from edge.camera.frame import Frame
from edge.decision import Thresholds
from edge.inspector import Inspector
from edge.model.detector import Detector, Inference
from edge.model.session import open_session
from edge.products.active import ActiveProduct
from edge.products.enroll import EnrollSettings, Shot, enroll_product
from edge.products.product import ProductError
from tests.tiny_models import CPU_ONLY, save_model

STATION = Thresholds(image=0.75, pixel=0.75, source="station config")


class Recorder:
    """An inspector observer that keeps what it was handed, and asks for features when told to."""

    def __init__(self, want: bool = False) -> None:
        self.want = want
        self.features: list[bool] = []

    def wants_features(self) -> bool:
        return self.want

    def observe(self, verdict, inference: Inference, scored, snapshot) -> None:  # noqa: ANN001
        self.features.append(inference.patch_features is not None)


def _part(seed: int) -> np.ndarray:
    return np.clip(128 + np.random.default_rng(seed).normal(0, 12, (16, 16, 3)), 0, 255).astype(np.uint8)


def _frame(seed: int) -> Frame:
    return Frame(seed, 0, 0, _part(seed), {})


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    loaded = open_session(
        save_model(tmp_path_factory.mktemp("m"), height=16, width=16, patch_features=True), CPU_ONLY
    )
    detector = Detector(loaded)
    shots = [Shot.of(str(s), detector.run(detector.prepare(_frame(s)), features=True)) for s in range(3)]
    fused = enroll_product("tiny", shots, loaded.info, EnrollSettings(max_memory_tokens=100)).product
    inp = enroll_product("plain", shots, loaded.info, EnrollSettings(fusion="inp")).product
    return detector, loaded.info, replace(fused, version=1), replace(inp, version=4)


@pytest.mark.parametrize(
    ("product", "enrolling", "fetched"),
    [(None, False, False), ("plain", False, False), ("tiny", False, True), ("plain", True, True)],
)
def test_patch_features_are_fetched_only_for_a_frame_that_needs_them(
    tiny, product, enrolling, fetched
) -> None:  # noqa: ANN001
    detector, info, fused, inp = tiny
    active = ActiveProduct(info)
    if product is not None:
        active.switch({"tiny": fused, "plain": inp}[product])
    recorder = Recorder(want=enrolling)
    Inspector(detector, STATION, 0, active=active, observer=recorder).inspect(_frame(7))
    assert recorder.features == [fetched]


def test_a_verdict_carries_the_product_its_threshold_and_scoring_time(tiny) -> None:  # noqa: ANN001
    detector, info, fused, _ = tiny
    active = ActiveProduct(info)
    inspector = Inspector(detector, STATION, 0, active=active)
    before = inspector.inspect(_frame(8))
    active.switch(fused)
    after = inspector.inspect(_frame(9))
    assert (before.verdict.product, before.verdict.threshold, before.pixel_threshold) == (None, 0.75, 0.75)
    assert (after.verdict.product, after.verdict.product_version) == ("tiny", 1)
    assert (
        after.verdict.threshold == fused.thresholds.image and after.pixel_threshold == fused.thresholds.pixel
    )
    assert after.verdict.threshold_source.startswith("product tiny v1: enrollment")
    assert "product_ms" in after.verdict.latency_ms and "product_ms" not in before.verdict.latency_ms
    assert after.inference is not None and after.inference.anomaly_map.min() < 0  # the product's map is drawn


def test_a_switch_is_acknowledged_with_the_first_frame_inspected_with_it(tiny) -> None:  # noqa: ANN001
    detector, info, fused, inp = tiny
    active = ActiveProduct(info)
    inspector = Inspector(detector, STATION, 0, active=active)
    generation = active.switch(inp)
    assert active.wait_effective(generation, 0.05) is None  # no frame yet: pending
    later = threading.Timer(0.1, lambda: inspector.inspect(_frame(21)))
    later.start()
    assert active.wait_effective(generation, 5.0) == 21
    inspector.inspect(_frame(22))
    assert active.first_frame(generation) == 21  # the first one, not the latest
    later.join()


def test_a_product_this_model_cannot_score_is_refused_before_the_swap(tiny) -> None:  # noqa: ANN001
    detector, info, fused, inp = tiny
    active = ActiveProduct(info)
    active.switch(inp)
    with pytest.raises(ProductError, match="re-enroll"):
        active.switch(replace(fused, model_sha256="0" * 64))
    without_features = ActiveProduct(info, has_patch_features=False)
    with pytest.raises(ProductError, match="no patch_features output"):
        without_features.switch(fused)
    assert active.current()[0] is inp and without_features.current() == (None, None)
