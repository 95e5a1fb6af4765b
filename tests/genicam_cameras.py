"""GenICamSource settings for the two real GenTL producers the camera tests open.

- viky: free-run, serial "1" (``viky_settings``);
- TLSimu: the colour camera under software trigger (``tlsimu_settings``; its producer comes from the
  ``tlsimu`` fixture in tests/conftest.py).
"""

from __future__ import annotations

from pathlib import Path

from edge.camera.genicam_settings import DeviceSelector, GenICamSettings, TriggerSettings
from tests.genicam_support import TLSIMU_COLOR, viky_cti


def viky_settings(**changes) -> GenICamSettings:
    base = {"producers": (viky_cti(),), "device": DeviceSelector(serial_number="1"), "start_timeout_s": 5.0}
    return GenICamSettings(**(base | changes))


def tlsimu_settings(cti: Path, **changes) -> GenICamSettings:
    base = {
        "producers": (cti,),
        "device": DeviceSelector(serial_number=TLSIMU_COLOR),
        "trigger": TriggerSettings(mode="software", timeout_s=0.5),
        "start_timeout_s": 5.0,
    }
    return GenICamSettings(**(base | changes))
