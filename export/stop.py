"""Stop a training run cleanly on Ctrl-C or SIGTERM: finish the step, save, and stop."""

from __future__ import annotations

import signal
import sys
import threading
from typing import Any


class StopRequest:
    """Ctrl-C or SIGTERM while training: finish the step in flight, save, and stop ("interrupted").

    Saving between steps keeps the checkpoint consistent, so ``--resume`` continues exactly where
    it stopped. A second Ctrl-C stops at once (KeyboardInterrupt), keeping the last saved
    checkpoint. Signal handlers can only be set from the main thread; elsewhere this does nothing.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print(
            "\nstopping after this step and saving a checkpoint (Ctrl-C again to stop now)", file=sys.stderr
        )

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
