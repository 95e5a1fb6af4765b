"""Products on the device: registry on disk, few-shot memory, scoring, enrollment and calibration."""
