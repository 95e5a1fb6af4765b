"""The product the inspect thread scores with, swapped whole between two frames.

``ActiveProduct`` holds one immutable ``Snapshot`` (product, its scorer, a generation number). The
inspect thread takes ONE snapshot per frame (``snapshot()``), so a frame is scored and decided with
one product from start to end, never half of an old and half of a new one. ``switch`` builds the new
scorer on the caller's thread (the control thread: loading the memory, squared norms), then swaps the
snapshot under a lock: the swap itself is one assignment.

The inspect thread reports the frames it inspected with each generation (``inspected``); the first
one is where the switch took effect, which the control commands return (``wait_effective``).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from edge.model.contract_check import ModelInfo
from edge.products.product import Product, ProductError, check_model
from edge.products.scoring import ProductScorer

KEEP_GENERATIONS = 16  # first-frame records kept (a switch is acknowledged long before 16 more)


@dataclass(frozen=True)
class Snapshot:
    """What one frame is inspected with: a product and its scorer (both None: the station's own)."""

    product: Product | None
    scorer: ProductScorer | None
    generation: int

    @property
    def needs_features(self) -> bool:
        return self.scorer is not None and self.scorer.needs_features


class ActiveProduct:
    """The active product (thread-safe); see the module docstring."""

    def __init__(self, info: ModelInfo, *, has_patch_features: bool = True) -> None:
        self.info = info
        self.has_patch_features = has_patch_features
        self._snapshot = Snapshot(None, None, 0)
        self._changed = threading.Condition()
        self._first_frames: OrderedDict[int, int] = OrderedDict()

    def snapshot(self) -> Snapshot:
        """The product for one frame (a single read: the inspect thread calls it once per frame)."""
        return self._snapshot

    def current(self) -> tuple[Product | None, ProductScorer | None]:
        snapshot = self._snapshot
        return snapshot.product, snapshot.scorer

    def scorer_for(self, product: Product) -> ProductScorer:
        """A ready scorer for ``product`` with this model, or ProductError saying why it cannot score."""
        check_model(product, self.info.sha256, self.info.model_id)
        scorer = ProductScorer(product, self.info)
        if scorer.needs_features and not self.has_patch_features:
            raise ProductError(
                f"product {product.label()} scores with its few-shot memory (fusion {product.fusion!r}) "
                f"and model {self.info.model_id} has no patch_features output",
                fix="deploy a model exported with patch_features (inp-export export), or re-enroll the "
                'product with fusion "inp"',
            )
        return scorer

    def switch(self, product: Product | None) -> int:
        """Make ``product`` (None: the station's own thresholds) active from the next frame.

        The scorer is built here, on the caller's thread, before the swap; returns the generation
        to pass to ``wait_effective``.
        """
        scorer = None if product is None else self.scorer_for(product)
        with self._changed:
            snapshot = Snapshot(product, scorer, self._snapshot.generation + 1)
            self._snapshot = snapshot
        return snapshot.generation

    def inspected(self, generation: int, frame_id: int) -> None:
        """The inspect thread inspected ``frame_id`` with ``generation`` (cheap after the first)."""
        if generation in self._first_frames:
            return
        with self._changed:
            if generation in self._first_frames:
                return
            self._first_frames[generation] = int(frame_id)
            while len(self._first_frames) > KEEP_GENERATIONS:
                self._first_frames.popitem(last=False)
            self._changed.notify_all()

    def first_frame(self, generation: int) -> int | None:
        with self._changed:
            return self._first_frames.get(generation)

    def wait_effective(self, generation: int, wait_s: float) -> int | None:
        """The first frame id inspected with ``generation``, waiting up to ``wait_s``; None if none came."""
        with self._changed:
            self._changed.wait_for(lambda: generation in self._first_frames, timeout=max(0.0, wait_s))
            return self._first_frames.get(generation)
