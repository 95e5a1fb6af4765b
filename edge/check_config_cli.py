"""``inp-edge check-config``: validate a station config before the service starts with it."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from edge.cli import Command
from edge.errors import ConfigError

DESCRIPTION = """\
Check a station config file (YAML, one per station) without starting anything.

Valid: exit status 0 and a summary of the settings in effect, defaults filled in.
Invalid: exit status 2 and every problem found, one per line:

  key.path: what is wrong (allowed: what the key accepts) [line N]

Checked: YAML syntax (line and column), unknown keys (with the nearest known one), types,
ranges and choices, required keys (station, model.path), that the model file and the CURVE key
files exist, the replay path (it must exist; its first image or the video gives the frame size),
the region of interest against the frame (generated or replay source), endpoint syntax, publish
and control sharing an endpoint, a control endpoint open to other machines without allow_remote or
CURVE, and the execution-provider list. Not checked: the model's contents (inp-edge bench-model
opens it) and which providers this onnxruntime offers (the service says so when it starts).

A camera profile (camera_profiles/*.yaml: a file with the top-level key `profile`) is recognised
and checked on its own: schema version, camera vendor and model, tried_on_hardware, and every node
write (an SFNC node name, a value, verify true/false; Trigger* nodes belong to the station, a
PixelFormat must be one the model input can be made from). A station with source.kind genicam has
its source.genicam.profile checked the same way.

Relative paths in the file are relative to the file's folder. The reference of every key is in
docs/config.md; --reference prints it here.

examples:
  inp-edge check-config /etc/inp-edge/line1-cam1.yaml
  inp-edge check-config station.yaml --json | jq .config.model
  inp-edge check-config camera_profiles/basler-ace-usb3.yaml
"""


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file", metavar="FILE", type=Path, nargs="?", help="station config or camera profile (YAML)"
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the result as JSON on stdout: valid, issues, and every key of the config in effect",
    )
    parser.add_argument(
        "--reference", action="store_true", help="print the reference of every key (Markdown table) and exit"
    )


def _run(args: argparse.Namespace) -> int:
    from edge.config import check_config_file, config_to_dict
    from edge.config_schema import reference_markdown

    if args.reference:
        print(reference_markdown(), end="")
        return 0
    if args.file is None:
        raise ConfigError("no FILE given", fix="run `inp-edge check-config FILE` (or --reference)")
    if _is_profile_file(args.file):
        return _check_profile(args)
    config, issues = check_config_file(args.file)
    if args.json:
        report: dict[str, Any] = {
            "file": str(args.file),
            "valid": config is not None,
            "issues": [asdict(issue) for issue in issues],
            "config": None if config is None else config_to_dict(config),
        }
        if config is not None:
            report["effective"] = {
                "cache_dir": str(config.cache_dir),
                "archive_folder": str(config.archive_folder),
            }
        print(json.dumps(report, indent=2))
    elif config is None:
        print(f"{args.file}: {len(issues)} problem{'s' if len(issues) != 1 else ''}")
        for issue in issues:
            print(f"  {issue}")
        print("reference: docs/config.md, or inp-edge check-config --reference")
    else:
        print(f"{args.file}: valid")
        print(summary(config))
    return 0 if config is not None else 2


def _is_profile_file(path: Path) -> bool:
    import yaml

    from edge.camera.profile import is_profile_document

    try:
        return is_profile_document(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False  # the station-config check reports what is wrong with the file


def _check_profile(args: argparse.Namespace) -> int:
    from edge.camera.profile import check_profile_file

    profile, issues = check_profile_file(args.file)
    if args.json:
        document = None if profile is None else asdict(profile) | {"path": str(args.file)}
        report = {"file": str(args.file), "kind": "camera profile", "valid": profile is not None}
        print(json.dumps(report | {"issues": [asdict(i) for i in issues], "profile": document}, indent=2))
    elif profile is None:
        print(f"{args.file}: camera profile, {len(issues)} problem{'s' if len(issues) != 1 else ''}")
        for issue in issues:
            print(f"  {issue}")
        print("reference: docs/cameras.md")
    else:
        tried = "tried on hardware" if profile.tried_on_hardware else "NOT yet tried on hardware"
        print(f"{args.file}: valid camera profile for {profile.vendor} {profile.model} ({tried})")
        for write in profile.nodes:
            print(f"  {write.node} = {write.value!r}{'' if write.verify else ' (not read back)'}")
    return 0 if profile is not None else 2


def summary(config: Any) -> str:
    """A few lines saying what the station will do with ``config`` (a StationConfig)."""
    rows = [
        ("station", f"{config.station} (topics {config.station}/verdict, /overlay, /heartbeat)"),
        ("state dir", str(config.state_dir)),
        ("source", _source_text(config.source)),
        ("model", _model_text(config)),
        ("inspection", _inspection_text(config.inspection)),
        ("thresholds", _thresholds_text(config.inspection.thresholds)),
        ("queues", f"inspect {config.queues.inspect} frames, output {config.queues.output} jobs"),
        ("publish", _publish_text(config.publish)),
        ("control", _control_text(config.control)),
        ("archive", _archive_text(config)),
        ("logging", config.logging.level),
    ]
    return "\n".join(f"  {name:<11} {text}" for name, text in rows)


def _source_text(source: Any) -> str:
    rate = f"{source.rate_pps:g} parts/s" if source.rate_pps > 0 else "as fast as the pipeline takes them"
    if source.kind == "replay":
        return f"replay {source.path}{' (loop)' if source.loop else ''}, {rate}"
    if source.kind == "genicam":
        return _genicam_text(source.genicam)
    parts = f"{source.parts} parts" if source.parts else "endless"
    return (
        f"generated {source.size_px}x{source.size_px} px, {parts}, {source.defect_fraction:.0%} defective, "
        f"seed {source.seed}, {rate}"
    )


def _genicam_text(genicam: Any) -> str:
    from edge.camera.genicam_settings import DeviceSelector

    device = DeviceSelector(**vars(genicam.device)).describe()
    producers = ", ".join(str(path) for path in genicam.producers) or "GENICAM_GENTL64_PATH"
    trigger = genicam.trigger
    mode = trigger.mode
    if mode == "line":
        mode += f" {trigger.source} {trigger.activation}, delay {trigger.delay_us:g} µs"
    return (
        f"genicam camera {device} via {producers}; profile {genicam.profile or 'none'}; trigger {mode}; "
        f"reconnect back-off up to {genicam.reconnect_backoff_max_s:g} s"
    )


def _model_text(config: Any) -> str:
    model = config.model
    threads = model.intra_op_threads or "default"
    fallback = "CPU fallback allowed" if model.allow_cpu_fallback else "no CPU fallback"
    return (
        f"{model.path}; providers {', '.join(model.providers)}, {fallback}; threads {threads}; "
        f"warm-up {model.warmup_runs} runs; engine cache {config.cache_dir}"
    )


def _inspection_text(inspection: Any) -> str:
    roi = inspection.roi
    region = "whole frame" if roi is None else f"x {roi.x}, y {roi.y}, {roi.width}x{roi.height} px"
    return (
        f"product {inspection.product}; ROI {region}; fit {inspection.fit}; "
        f"deadline {inspection.deadline_ms:g} ms"
    )


def _thresholds_text(thresholds: Any) -> str:
    image = "from the model's statistics" if thresholds.image is None else f"{thresholds.image:g}"
    pixel = "= image" if thresholds.pixel is None else f"{thresholds.pixel:g}"
    return f"image {image}; pixel {pixel}; min region {thresholds.min_region_area_px:g} px²"


def _publish_text(publish: Any) -> str:
    curve = f"CURVE key {publish.curve_secret_key_file}" if publish.curve_secret_key_file else "no CURVE"
    overlays = "overlays on" if publish.overlays else "overlays off"
    return (
        f"{publish.endpoint}; {overlays}; heartbeat every {publish.heartbeat_period_s:g} s; "
        f"high-water mark {publish.send_hwm_messages} messages; {curve}"
    )


def _control_text(control: Any) -> str:
    curve = f"CURVE key {control.curve_secret_key_file}" if control.curve_secret_key_file else "no CURVE"
    remote = "remote allowed" if control.allow_remote else "local only"
    return f"{control.endpoint}; ring {control.ring_size} verdicts; {remote}; {curve}"


def _archive_text(config: Any) -> str:
    archive = config.archive
    if not archive.enabled:
        return "off"
    passes = f"1 pass in {archive.sample_pass_every}" if archive.sample_pass_every else "no passes"
    return f"{config.archive_folder}; quota {archive.quota_mb:g} MB; fail, error, {passes}"


COMMAND = Command(
    name="check-config",
    help="check a station config file: exit 0 when valid, else 2 and every problem with its key",
    description=DESCRIPTION,
    add_arguments=_add_arguments,
    run=_run,
)
