"""Every trigger accounted for: match frames to triggers and announced parts, find stale and lost ones.

Pure bookkeeping (no camera, no clock of its own: times are monotonic ns handed in), tested with
tables in tests/test_genicam_triggers.py. The GenICam source feeds it:

- ``announce(part_id, t_ns)``: the line said which part comes next, ahead of its trigger; parts are
  matched to frames (line trigger) or to software triggers in the order they were announced.
- ``trigger(t_ns, part_id)``: a software trigger was sent, for ``part_id`` or else for the oldest
  announced part, if any.
- ``frame(block_id, camera_ts_ns, t_ns)``: a frame arrived. It is **stale** when its block id does
  not move forward (an older buffer returned again), or, with software
  triggers, when no trigger sent before it is waiting (a buffer from before the trigger). A block-id
  gap means frames were lost on the way: with triggers waiting, the oldest ones are taken as missed
  so the frame matches the trigger it answers, not an older one. The camera timestamp decides order
  only for a camera without block ids: timestamps wrap (a 32-bit tick counter does; TLSimu reports
  only the nanoseconds within the current second, so it goes back once a second), block ids do not
  within a session.
- ``expire(now_ns)``: triggers and announced parts that waited more than ``timeout_ns`` without a
  frame are missed triggers (the camera ignored a trigger that came too fast, or a frame was lost).
- ``new_session()``: the camera was reopened; its block ids and timestamps start again, and
  everything still waiting is missed.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from edge.camera.genicam_settings import FREE_RUN, SOFTWARE


@dataclass(frozen=True)
class Waiting:
    """A software trigger sent, or a part announced, that no frame has answered yet."""

    t_ns: int
    part_id: str | None
    kind: str  # "trigger" | "part"


@dataclass(frozen=True)
class FrameMatch:
    part_id: str | None
    trigger_t_ns: int | None  # when its software trigger was sent
    stale: str  # why the frame is stale; "" when it is not
    missed: tuple[Waiting, ...]  # triggers / parts given up because of a block-id gap
    lost_frames: int  # block-id gap before this frame (0 without ids)


class TriggerLedger:
    def __init__(self, mode: str, timeout_ns: int) -> None:
        self.mode = mode
        self.timeout_ns = timeout_ns
        self._parts: deque[Waiting] = deque()  # announced, not yet taken by a trigger or a frame
        self._triggers: deque[Waiting] = deque()  # software triggers sent, no frame yet
        self._last_block: int | None = None
        self._last_camera_ts: int | None = None

    def announce(self, part_id: str, t_ns: int) -> None:
        self._parts.append(Waiting(t_ns, part_id, "part"))

    def trigger(self, t_ns: int, part_id: str | None = None) -> str | None:
        """Record a software trigger for ``part_id``, else the oldest announced part; returns the id."""
        waiting = self.take_part(t_ns, part_id)
        self._triggers.append(waiting)
        return waiting.part_id

    def take_part(self, t_ns: int, part_id: str | None = None) -> Waiting:
        """A trigger at ``t_ns`` for ``part_id``, else for the oldest announced part (taken off the queue)."""
        if part_id is None and self._parts:
            part_id = self._parts.popleft().part_id
        return Waiting(t_ns, part_id, "trigger")

    @property
    def waiting(self) -> int:
        return len(self._parts) + len(self._triggers)

    def expire(self, now_ns: int) -> list[Waiting]:
        """Triggers and parts that waited longer than the timeout: missed."""
        missed = []
        for queue in (self._triggers, self._parts):
            while queue and now_ns - queue[0].t_ns > self.timeout_ns:
                missed.append(queue.popleft())
        return sorted(missed, key=lambda waiting: waiting.t_ns)

    def new_session(self) -> list[Waiting]:
        """The camera was reopened: ids start again; what still waits is missed."""
        self._last_block = self._last_camera_ts = None
        missed = sorted([*self._triggers, *self._parts], key=lambda waiting: waiting.t_ns)
        self._triggers.clear()
        self._parts.clear()
        return missed

    def frame(self, block_id: int | None, camera_ts_ns: int | None, t_ns: int) -> FrameMatch:
        stale = self._stale_order(block_id, camera_ts_ns)
        gap = 0
        if not stale and block_id is not None and self._last_block is not None:
            gap = block_id - self._last_block - 1
        if not stale:
            self._last_block = block_id if block_id is not None else self._last_block
            self._last_camera_ts = camera_ts_ns if camera_ts_ns is not None else self._last_camera_ts
        if stale or self.mode == FREE_RUN:
            return FrameMatch(None, None, stale, (), gap)
        if self.mode == SOFTWARE:
            return self._match_trigger(t_ns, gap)
        missed = tuple(self._parts.popleft() for _ in range(min(gap, len(self._parts))))
        part = self._parts.popleft().part_id if self._parts else None
        return FrameMatch(part, None, "", missed, gap)

    def _stale_order(self, block_id: int | None, camera_ts_ns: int | None) -> str:
        if block_id is not None and self._last_block is not None and block_id <= self._last_block:
            return f"block id {block_id} does not follow {self._last_block} (an older buffer)"
        if (
            block_id is None
            and camera_ts_ns is not None
            and self._last_camera_ts is not None
            and camera_ts_ns <= self._last_camera_ts
        ):
            return "its camera timestamp is not after the previous frame's (an older buffer)"
        return ""

    def _match_trigger(self, t_ns: int, gap: int) -> FrameMatch:
        sent_before = sum(1 for waiting in self._triggers if waiting.t_ns <= t_ns)
        if sent_before == 0:
            return FrameMatch(None, None, "no software trigger was waiting for it (a buffer from before "
                              "the trigger)", (), gap)  # fmt: skip
        missed = tuple(self._triggers.popleft() for _ in range(min(gap, sent_before - 1)))
        matched = self._triggers.popleft()
        return FrameMatch(matched.part_id, matched.t_ns, "", missed, gap)
