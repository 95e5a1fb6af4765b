"""A cable that tests can pull: the GenTL producer's calls fail the way they do for a vanished camera.

The narrowest seam is the genicam.gentl binding that harvesters calls into. While the marker file
named by ``INP_EDGE_TEST_CABLE`` exists, ``install`` (run inside the camera process through
``ProcessOptions.process_hook``: ``GenICamSource(settings, FAULTS)``) changes the producer's answers by
what the file says:

- ``io-error`` (a pulled cable, as USB3 / GigE producers report it): ``EventManagerNewBuffer.
  update_event_data`` (EventGetData, what harvesters' fetch waits in) raises ``genicam.gentl.
  IoException`` with GC_ERR_IO (-1010), which harvesters logs and re-raises from ``fetch``;
  ``Port.read`` / ``Port.write`` (register access) raise the same; ``Device.access_status`` reads
  DEVICE_ACCESS_STATUS_NOACCESS (3); ``Interface.device_info_list`` no longer lists the camera.
- ``vanished``: the same, except that EventGetData only times out (``TimeoutException``): a
  producer that reports the loss through the access status alone.
- ``stalled``: EventGetData times out and nothing else changes: a stream that stopped while the
  device still answers; only missing frames in free-run show it.

Removing the file plugs the cable back in. Everything else is the real producer.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from edge.camera.genicam_settings import ProcessOptions

CABLE_VARIABLE = "INP_EDGE_TEST_CABLE"
FAULTS = ProcessOptions(process_hook="tests.genicam_faults:install")
NOACCESS = 3
IO_ERROR = "GenTL exception: Communication error or connection lost. (Message from the source: device removed) (ID: -1010)"


def install() -> None:
    import genicam.gentl as gentl

    marker = Path(os.environ[CABLE_VARIABLE])

    def state() -> str:
        try:
            return marker.read_text()
        except FileNotFoundError:
            return ""

    def failing(original, fails_when: tuple[str, ...], times_out_when: tuple[str, ...] = ()):
        def call(self, *args):
            now = state()
            if now in times_out_when:
                time.sleep(args[0] / 1000 if args else 0)  # the producer's own wait, in ms
                raise gentl.TimeoutException("GenTL exception: Timeout elapsed. (ID: -1011)")
            if now in fails_when:
                raise gentl.IoException(IO_ERROR)
            return original(self, *args)

        return call

    gone = ("io-error", "vanished")
    events = gentl.EventManagerNewBuffer
    events.update_event_data = failing(events.update_event_data, ("io-error",), ("vanished", "stalled"))
    gentl.Port.read = failing(gentl.Port.read, gone)
    gentl.Port.write = failing(gentl.Port.write, gone)
    access = gentl.Device.access_status.fget
    gentl.Device.access_status = property(lambda self: NOACCESS if state() in gone else access(self))
    devices = gentl.Interface.device_info_list.fget
    gentl.Interface.device_info_list = property(lambda self: [] if state() in gone else devices(self))


class Cable:
    """The marker file: ``pull()`` takes the camera away, ``plug()`` gives it back."""

    def __init__(self, folder: Path) -> None:
        self.marker = folder / "cable-pulled"

    def pull(self, how: str = "io-error") -> None:
        assert how in ("io-error", "vanished", "stalled")
        self.marker.write_text(how)

    def plug(self) -> None:
        self.marker.unlink(missing_ok=True)
