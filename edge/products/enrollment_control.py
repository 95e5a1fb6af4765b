"""The enrollment commands of the control socket: ``enroll_start``, ``enroll_status``, ``enroll_stop``.

An enrollment takes the next ``shots`` inspected parts (any verdict but error) as good parts of a
product, builds it on a worker thread (edge/products/enrollment_job.py), saves it as a new version
and, with ``activate``, makes it the active product. docs/messages.md has the requests and replies.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from edge.control import RequestError
from edge.control_args import bool_arg, check_keys, number_arg, text_arg, whole_arg
from edge.model.contract_check import ModelInfo
from edge.model.detector import Inference
from edge.products.enroll import Enrolled, EnrollSettings, Shot, enroll_product
from edge.products.enrollment_job import BUILDING, COLLECTING, MAX_SHOTS, EnrollmentJob, EnrollPlan
from edge.products.memory import DEFAULT_MAX_TOKENS
from edge.products.product import DEFAULT_FUSION, FUSIONS, Product, check_name
from edge.products.registry import ProductRegistry

log = logging.getLogger("inp_edge.enroll")

STOP_WAIT_S = 30.0  # enroll_stop waits this long for the build by default
MAX_MEMORY_TOKENS = 65536


class EnrollmentControl:
    def __init__(
        self,
        registry: ProductRegistry,
        info: ModelInfo,
        *,
        station: str,
        has_patch_features: bool,
        activate: Callable[[Product], None],
    ) -> None:
        self.registry = registry
        self.info = info
        self.station = station
        self.has_patch_features = has_patch_features
        self._activate = activate
        self.job: EnrollmentJob | None = None

    def wants_features(self) -> bool:
        job = self.job
        return job is not None and job.collecting and job.needs_features

    def offer(self, frame_id: int, inference: Inference) -> None:
        job = self.job
        if job is not None and job.collecting:
            job.offer(frame_id, inference)

    def status(self) -> dict[str, Any] | None:
        return None if self.job is None else self.job.status()

    def handlers(self) -> dict[str, Callable[[dict[str, Any]], dict[str, Any]]]:
        return {
            "enroll_start": self.enroll_start,
            "enroll_status": self.enroll_status,
            "enroll_stop": self.enroll_stop,
        }

    def enroll_start(self, request: dict[str, Any]) -> dict[str, Any]:
        """enroll a product from the next parts: product, shots, fusion?, max_memory_tokens?, activate?"""
        check_keys(request, ("product", "shots", "fusion", "max_memory_tokens", "activate"))
        plan = EnrollPlan(
            product=check_name(text_arg(request, "product")),
            shots=whole_arg(request, "shots", minimum=1, maximum=MAX_SHOTS),
            fusion=text_arg(request, "fusion", choices=FUSIONS, default=DEFAULT_FUSION),
            max_memory_tokens=whole_arg(
                request, "max_memory_tokens", minimum=1, maximum=MAX_MEMORY_TOKENS, default=DEFAULT_MAX_TOKENS
            ),
            activate=bool_arg(request, "activate", default=False),
        )
        if plan.fusion != "inp" and not self.has_patch_features:
            raise RequestError(
                f"enroll_start: fusion {plan.fusion!r} needs the model's patch_features, and model "
                f"{self.info.model_id} has no such output",
                fix='use "fusion": "inp", or deploy a model exported with patch_features (inp-export export)',
            )
        running = self.job
        if running is not None and running.state in (COLLECTING, BUILDING):
            raise RequestError(
                f"enroll_start: the enrollment of {running.plan.product} is still {running.state}",
                fix='wait for it (enroll_status), or stop it: {"cmd": "enroll_stop", "cancel": true}',
            )
        self.job = EnrollmentJob(plan, self._build)
        log.info(
            "enrollment of %s started: the next %d parts (fusion %s)", plan.product, plan.shots, plan.fusion
        )
        return {"collecting": plan.shots, "product": plan.product, "fusion": plan.fusion}

    def enroll_status(self, request: dict[str, Any]) -> dict[str, Any]:
        """the enrollment's state: collecting, building, done, failed or cancelled"""
        check_keys(request, ())
        return self.status() or {"state": None, "note": "no enrollment since the service started"}

    def enroll_stop(self, request: dict[str, Any]) -> dict[str, Any]:
        """stop collecting: build from the parts in (cancel?: drop them); waits for the build (wait_s?)"""
        check_keys(request, ("cancel", "wait_s"))
        cancel = bool_arg(request, "cancel", default=False)
        wait_s = number_arg(request, "wait_s", low=0.0, high=120.0, default=STOP_WAIT_S)
        job = self.job
        if job is None:
            raise RequestError(
                "enroll_stop: no enrollment was started", fix='start one: {"cmd": "enroll_start", ...}'
            )
        job.stop(cancel=cancel)
        job.wait(wait_s)
        return job.status()

    def _build(self, plan: EnrollPlan, shots: list[Shot]) -> tuple[int, Enrolled, bool]:
        """On the job's worker thread: build, save and (when asked) activate the product."""
        settings = EnrollSettings(fusion=plan.fusion, max_memory_tokens=plan.max_memory_tokens)
        source = (
            f"station {self.station}: {len(shots)} inspected parts ({shots[0].label} .. {shots[-1].label})"
        )
        enrolled = enroll_product(plan.product, shots, self.info, settings, source=source, progress=log.info)
        saved = self.registry.save(
            enrolled.product, note=f"enrolled on {self.station} via the control socket"
        )
        if plan.activate:
            self._activate(saved)
        return saved.version, enrolled, plan.activate
