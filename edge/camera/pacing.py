"""Pacing and the shared life cycle of the sources that are not a camera.

A paced source behaves like a line: with ``rate_pps > 0`` part ``i`` is due at
``t0 + i / rate_pps`` on the monotonic clock, where ``t0`` is the first ``grab``. The schedule is
fixed, so delivery does not drift; a consumer that falls behind gets the parts that are already due
back to back until it catches up (the line does not wait for it). ``grab(timeout_s)`` waits at most
``timeout_s``: when the next part is not due within it, it returns ``None`` after the timeout, so
the acquisition loop notices a stop request quickly. With ``rate_pps == 0`` parts come as fast as
they are asked for. A frame's capture time is when it was delivered: its due time, or later when
it was asked for late.

``PacedSource`` is the base of the replay and generated sources: open / close, ``connected``,
running ``frame_id`` from 0, pacing and time stamps. A subclass only says how to open, close and
produce the next image.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge.camera.frame import Frame, now_ns
from edge.errors import ConfigError, SourceError

_NS_PER_S = 1_000_000_000


@dataclass(frozen=True)
class WaitPlan:
    """What ``grab`` does now: sleep ``sleep_ns``, then deliver the part or return None."""

    sleep_ns: int
    deliver: bool


def due_ns(t0_ns: int, index: int, rate_pps: float) -> int:
    """Monotonic time at which part ``index`` is due on a line started at ``t0_ns``."""
    return t0_ns + round(index * _NS_PER_S / rate_pps)


def plan_wait(now_ns: int, part_due_ns: int, timeout_s: float) -> WaitPlan:
    """Deliver when the part is due within the timeout (sleeping until it is), else wait out the timeout."""
    timeout_ns = max(0, round(timeout_s * _NS_PER_S))
    wait_ns = part_due_ns - now_ns
    if wait_ns <= 0:
        return WaitPlan(sleep_ns=0, deliver=True)
    if wait_ns <= timeout_ns:
        return WaitPlan(sleep_ns=wait_ns, deliver=True)
    return WaitPlan(sleep_ns=timeout_ns, deliver=False)


def is_number(value: object, *, whole: bool = False) -> bool:
    """A number (``whole``: an integer), numpy's included; never a bool."""
    kinds = (int, np.integer) if whole else (int, float, np.integer, np.floating)
    return isinstance(value, kinds) and not isinstance(value, bool)


def check_rate(rate_pps: float) -> float:
    """``rate_pps`` as a float, refused when negative or not a number."""
    if not is_number(rate_pps) or not 0 <= rate_pps < math.inf:
        raise ConfigError(
            f"rate_pps {rate_pps!r} is not a rate", fix="give parts per second >= 0 (0: as fast as asked)"
        )
    return float(rate_pps)


class Pacer:
    """The line's schedule: started by the first ``wait``, fixed after that."""

    def __init__(self, rate_pps: float) -> None:
        self.rate_pps = check_rate(rate_pps)
        self._t0_ns: int | None = None

    def wait(self, index: int, timeout_s: float) -> bool:
        """Block until part ``index`` is due (True), or for ``timeout_s`` when it is not due by then (False)."""
        if self.rate_pps == 0:
            return True
        if self._t0_ns is None:
            self._t0_ns = time.monotonic_ns()
        t_now_ns = time.monotonic_ns()
        plan = plan_wait(t_now_ns, due_ns(self._t0_ns, index, self.rate_pps), timeout_s)
        _sleep_until(t_now_ns + plan.sleep_ns)
        return plan.deliver


def _sleep_until(deadline_ns: int) -> None:
    while (remaining_ns := deadline_ns - time.monotonic_ns()) > 0:
        time.sleep(remaining_ns / _NS_PER_S)


def describe_rate(rate_pps: float) -> str:
    """The pacing part of a source's name."""
    return f"{rate_pps:g} pps" if rate_pps > 0 else "unpaced"


class PacedSource:
    """Base of the replay and generated sources (see the module docstring).

    Subclasses set ``name`` and implement ``_open``, ``_close`` and ``_produce``; ``_produce``
    returns the next (image, meta) or raises ``SourceExhausted``. A produced image waits while its
    part is not due yet, so a ``grab`` that times out loses nothing.
    """

    name: str = "source"

    def __init__(self, rate_pps: float) -> None:
        self._pacer = Pacer(rate_pps)
        self._open_now = False
        self._count = 0
        self._pending: tuple[np.ndarray, dict[str, Any]] | None = None

    @property
    def rate_pps(self) -> float:
        return self._pacer.rate_pps

    def __enter__(self) -> PacedSource:
        if not self._open_now:
            self._open()
            self._open_now = True
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the source; closing twice is harmless."""
        if self._open_now:
            self._open_now = False
            self._pending = None
            self._close()

    def connected(self) -> bool:
        return self._open_now

    def grab(self, timeout_s: float) -> Frame | None:
        if not self._open_now:
            raise SourceError(
                f"{self.name} is not open", fix="use the source as a context manager (with ...)"
            )
        if self._pending is None:
            self._pending = self._produce()
        if not self._pacer.wait(self._count, timeout_s):
            return None
        image, meta = self._pending
        self._pending = None
        t_capture_ns, wall_time_ns = now_ns()
        frame = Frame(self._count, t_capture_ns, wall_time_ns, image, meta)
        self._count += 1
        return frame

    def _open(self) -> None:
        """Acquire what the source needs (files, a decoder); raise SourceError when it cannot."""

    def _close(self) -> None:
        """Release what ``_open`` acquired."""

    def _produce(self) -> tuple[np.ndarray, dict[str, Any]]:
        raise NotImplementedError
