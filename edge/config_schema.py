"""The station config schema (contract 3): ONE table of keys that drives validation, defaults and docs.

Each ``Key`` says its dotted path, its kind, its default (or ``REQUIRED``), its unit, what values
it allows and what it means. ``edge/config.py`` validates and loads through it, its dataclasses take
their defaults from it, and ``reference_markdown()`` renders the reference table in docs/config.md
(a test keeps the two in sync; ``inp-edge check-config --reference`` prints it).

How a value is checked against its key is in ``edge/config_values.py``. Pure: nothing is read here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
SOURCE_KINDS = ("generated", "replay", "genicam")
# In this order edge.camera.genicam_settings names them FREE_RUN, SOFTWARE, LINE.
TRIGGER_MODES = ("free-run", "software", "line")
TRIGGER_ACTIVATIONS = ("RisingEdge", "FallingEdge", "AnyEdge", "LevelHigh", "LevelLow")
FITS = ("stretch", "letterbox")  # the same as edge.model.preprocess.FITS (a test checks it)


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()

# Kinds of value. A "section" is a mapping of further keys.
KINDS = (
    *("section", "name", "int", "float", "bool", "choice", "path", "endpoint", "providers"),
    *("text", "paths"),
)
TYPE_NAMES = {
    "section": "mapping",
    "name": "name",
    "int": "integer",
    "float": "number",
    "bool": "boolean",
    "choice": "choice",
    "path": "path",
    "endpoint": "endpoint",
    "providers": "list",
    "text": "text",
    "paths": "list",
}


@dataclass(frozen=True)
class Key:
    """One key of the station config."""

    path: str  # dotted, e.g. "inspection.roi.width"
    kind: str  # one of KINDS
    default: Any  # REQUIRED, None, or a value of the kind (a path as written, relative)
    meaning: str
    unit: str = ""
    low: float | None = None  # inclusive, unless low_exclusive
    high: float | None = None  # inclusive
    low_exclusive: bool = False
    choices: tuple[str, ...] = ()
    nullable: bool = False
    path_is: str = ""  # path keys: "file" = must be an existing file; "folder" = a folder if it exists
    not_built: tuple[str, ...] = ()  # values recognised but refused: not built yet
    allowed: str = ""  # what it accepts, in words, where the kind alone does not say it well

    @property
    def name(self) -> str:
        return self.path.rpartition(".")[2]

    @property
    def parent(self) -> str:
        return self.path.rpartition(".")[0]

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


def _section(path: str, meaning: str, *, nullable: bool = False) -> Key:
    return Key(path, "section", None if nullable else {}, meaning, nullable=nullable)


# fmt: off
_ENDPOINT = "ZeroMQ endpoint the station binds"
_CURVE = "CURVE secret key file (zmq.auth certificate); null = no encryption"
_CURVE_CLIENTS = ("with CURVE: a folder of the gateways' public `.key` files; only they may connect; "
                  "null = any client that has the station's public key")
KEYS: tuple[Key, ...] = (
    Key("station", "name", REQUIRED, "station name; topic prefix of every message (`<station>/verdict`)"),
    Key("state_dir", "path", "./state", "products, the archive and caches; created when missing",
        path_is="folder"),
    _section("source", "where frames come from"),
    Key("source.kind", "choice", "generated", "frame source: a drawn line, a replay, or a GenICam camera",
        choices=SOURCE_KINDS),
    Key("source.rate_pps", "float", 0.0, "parts per second the source delivers; 0 = as fast as the "
        "pipeline takes them", unit="parts/s", low=0),
    Key("source.parts", "int", 0, "generated: parts to deliver; 0 = endless", unit="parts", low=0),
    Key("source.defect_fraction", "float", 0.1, "generated: fraction of parts with a defect", low=0, high=1),
    Key("source.size_px", "int", 128, "generated: side of the square frame", unit="px", low=32, high=4096),
    Key("source.seed", "int", 0, "generated: random seed (same seed, same parts)", low=0),
    Key("source.path", "path", None, "replay: what to replay; required for replay", nullable=True,
        allowed="an existing folder of images or video file"),
    Key("source.loop", "bool", False, "replay: start again after the last frame instead of stopping"),
    _section("source.genicam", "genicam: the line camera (docs/cameras.md)"),
    Key("source.genicam.producers", "paths", (), "GenTL producers (.cti files, or folders of them); [] = "
        "the folders in GENICAM_GENTL64_PATH"),
    _section("source.genicam.device", "which camera: every key set must match; none set = the only one found"),
    Key("source.genicam.device.serial_number", "text", None, "serial number", nullable=True),
    Key("source.genicam.device.id", "text", None, "device id given by the producer", nullable=True),
    Key("source.genicam.device.user_name", "text", None, "user-defined name (DeviceUserID)", nullable=True),
    Key("source.genicam.device.index", "int", None, "position in the list `inp-edge cameras` prints, from 0",
        nullable=True, low=0),
    Key("source.genicam.profile", "path", None, "camera profile (camera_profiles/*.yaml): node writes, "
        "each read back; null = leave the camera as it is", nullable=True, path_is="file"),
    _section("source.genicam.trigger", "free-run or triggered acquisition"),
    Key("source.genicam.trigger.mode", "choice", "free-run", "free-run: the camera streams; software: the "
        "service triggers; line: a hardware trigger line", choices=TRIGGER_MODES),
    Key("source.genicam.trigger.selector", "text", "FrameStart", "TriggerSelector the trigger applies to"),
    Key("source.genicam.trigger.source", "text", "Line0", "line: TriggerSource (Line0, Line1, ...)"),
    Key("source.genicam.trigger.activation", "choice", "RisingEdge", "line: TriggerActivation",
        choices=TRIGGER_ACTIVATIONS),
    Key("source.genicam.trigger.delay_us", "float", 0.0, "line: TriggerDelay", unit="µs", low=0),
    Key("source.genicam.trigger.timeout_s", "float", 1.0, "a trigger, or an announced part, with no frame "
        'after this is an ERROR "missed-trigger"', unit="s", low=0, low_exclusive=True),
    Key("source.genicam.fetch_timeout_s", "float", 0.05, "longest one fetch from the producer waits",
        unit="s", low=0.001, high=1),
    Key("source.genicam.frame_timeout_s", "float", 2.0, "free-run: no frame for this long = the camera is "
        "lost (triggered: never, a quiet line is not a loss)", unit="s", low=0, low_exclusive=True),
    Key("source.genicam.buffers", "int", 8, "buffers the producer fills (raised to its minimum)",
        unit="buffers", low=1, high=256),
    Key("source.genicam.reconnect_backoff_max_s", "float", 1.0, "a lost camera is looked for again after "
        "0.1 s, doubling up to this", unit="s", low=0.1, high=60),
    Key("source.genicam.start_timeout_s", "float", 10.0, "start-up waits this long for the camera to "
        "appear", unit="s", low=0, low_exclusive=True),
    _section("model", "the exported model and how onnxruntime runs it"),
    Key("model.path", "path", REQUIRED, "exported model (.onnx, contract 1)", path_is="file"),
    Key("model.providers", "providers", ("auto",), "execution providers, best first; auto = TensorRT > "
        "CUDA > CPU, whichever this onnxruntime offers"),
    Key("model.allow_cpu_fallback", "bool", False, "run on the CPU when a requested accelerator is "
        "missing, instead of refusing to start"),
    Key("model.intra_op_threads", "int", 0, "onnxruntime intra-op threads; 0 = its default", low=0),
    Key("model.spin_wait", "bool", True, "onnxruntime's threads spin-wait between runs (its default; "
        "measured faster for the whole pipeline here); false: they yield the CPU to other work at once"),
    Key("model.warmup_runs", "int", 3, "untimed runs at start-up", unit="runs", low=0),
    Key("model.cache_dir", "path", None, "TensorRT engine cache; null = `<state_dir>/cache`",
        nullable=True, path_is="folder"),
    _section("inspection", "what is inspected and how a verdict is reached"),
    Key("inspection.product", "name", "default", "active product (`<state_dir>/products/<name>`)"),
    Key("inspection.roi", "section", None, "region of interest in frame pixels; null = the whole frame",
        nullable=True, allowed="{x, y, width, height}"),
    Key("inspection.roi.x", "int", REQUIRED, "left edge of the region", unit="px", low=0),
    Key("inspection.roi.y", "int", REQUIRED, "top edge of the region", unit="px", low=0),
    Key("inspection.roi.width", "int", REQUIRED, "width of the region", unit="px", low=1),
    Key("inspection.roi.height", "int", REQUIRED, "height of the region", unit="px", low=1),
    Key("inspection.fit", "choice", "stretch", "how a non-square region becomes the model's square "
        "(docs/model.md)", choices=FITS),
    Key("inspection.deadline_ms", "float", 1000.0, "capture to verdict; a later verdict is an ERROR "
        '"late"', unit="ms", low=0, low_exclusive=True),
    _section("inspection.thresholds", "what decides a part (raw model units)"),
    Key("inspection.thresholds.image", "float", None, "raw image score above which a part fails; "
        "null = default from the model's good-part statistics", nullable=True),
    Key("inspection.thresholds.pixel", "float", None, "raw anomaly-map value above which a pixel is "
        "defective; null = the image threshold", nullable=True),
    Key("inspection.thresholds.min_region_area_px", "float", 0.0, "smaller defect regions are not "
        "reported", unit="px²", low=0),
    _section("queues", "bounded queues between the loops"),
    Key("queues.inspect", "int", 4, 'frames waiting for the model; a full queue makes an ERROR "overrun"',
        unit="frames", low=1, high=1000),
    Key("queues.output", "int", 64, "overlay / archive jobs waiting; dropped (and counted) when full",
        unit="jobs", low=1, high=10000),
    _section("publish", "verdicts, overlays and heartbeats (ZeroMQ PUB)"),
    Key("publish.endpoint", "endpoint", "tcp://127.0.0.1:5556", _ENDPOINT + " for PUB"),
    Key("publish.send_hwm_messages", "int", 1000, "messages queued per subscriber before ZeroMQ drops "
        "(subscribers see the gap in seq)", unit="messages", low=1, high=1_000_000),
    Key("publish.overlays", "bool", True, "publish an overlay JPEG for every part"),
    Key("publish.heartbeat_period_s", "float", 1.0, "time between heartbeats", unit="s", low=0,
        low_exclusive=True),
    Key("publish.curve_secret_key_file", "path", None, _CURVE, nullable=True, path_is="file"),
    Key("publish.curve_clients_dir", "path", None, _CURVE_CLIENTS, nullable=True, path_is="folder"),
    _section("control", "request / reply socket: status, missed verdicts by seq"),
    Key("control.endpoint", "endpoint", "tcp://127.0.0.1:5557", _ENDPOINT + " for REP"),
    Key("control.ring_size", "int", 1000, "recent verdicts kept for gap recovery", unit="verdicts", low=1,
        high=1_000_000),
    Key("control.allow_remote", "bool", False, "allow a non-local tcp endpoint without CURVE"),
    Key("control.curve_secret_key_file", "path", None, _CURVE, nullable=True, path_is="file"),
    Key("control.curve_clients_dir", "path", None, _CURVE_CLIENTS, nullable=True, path_is="folder"),
    _section("archive", "images of fail / error / sampled pass parts"),
    Key("archive.enabled", "bool", True, "keep images of fail and error parts"),
    Key("archive.folder", "path", None, "where archived images go; null = `<state_dir>/archive`",
        nullable=True, path_is="folder"),
    Key("archive.quota_mb", "float", 512.0, "the oldest images are removed past this size", unit="MB",
        low=0, low_exclusive=True),
    Key("archive.sample_pass_every", "int", 0, "keep every Nth pass too; 0 = no passes", unit="parts",
        low=0),
    _section("logging", "service log (stderr, journald)"),
    Key("logging.level", "choice", "INFO", "lowest level logged", choices=LOG_LEVELS),
    _section("notify", "systemd notifications (Type=notify); no effect unless systemd sets NOTIFY_SOCKET"),
    Key("notify.stall_s", "float", 10.0, "a loop without progress (no frame, no grab wait returning) for "
        "this long stops the WATCHDOG=1 pings; systemd restarts the service WatchdogSec later", unit="s",
        low=0, low_exclusive=True),
    Key("notify.engine_build_max_s", "float", 2700.0, "how long the start may be extended "
        "(EXTEND_TIMEOUT_USEC) while a first TensorRT engine is built; 0 = never", unit="s", low=0),
    _section("metrics", "Prometheus /metrics over HTTP (docs/deploy.md)"),
    Key("metrics.enabled", "bool", False, "serve http://HOST:PORT/metrics"),
    Key("metrics.host", "name", "127.0.0.1", "address the metrics server binds; 0.0.0.0 exposes the line's "
        "counts to the network", allowed="an IPv4 address or host name"),
    Key("metrics.port", "int", 9464, "TCP port of the metrics server, one per station; 0 = any free port",
        unit="port", low=0, high=65535),
)
# fmt: on

KEYS_BY_PATH: dict[str, Key] = {key.path: key for key in KEYS}
DEFAULTS: dict[str, Any] = {key.path: key.default for key in KEYS if key.kind != "section"}


def children(section: str) -> tuple[Key, ...]:
    """The keys directly inside ``section`` ("" = the top level), in table order."""
    return tuple(key for key in KEYS if key.parent == section)


def allowed_text(key: Key) -> str:
    """What values a key accepts, in words (the "allowed" of an issue and of the reference)."""
    if key.allowed:
        text = key.allowed
    elif key.kind in ("int", "float"):
        text = range_text(key)
    elif key.kind == "choice":
        text = ", ".join(key.choices)
    elif key.kind == "path" and key.path_is:
        text = "an existing file" if key.path_is == "file" else "a folder (made when missing)"
    else:
        text = _ALLOWED_BY_KIND[key.kind]
    return f"{text}, or null" if key.nullable else text


_ALLOWED_BY_KIND = {
    "section": "a mapping",
    "name": "1-64 of A-Z a-z 0-9 _ . -",
    "bool": "true, false",
    "path": "a path",
    "endpoint": "tcp://HOST:PORT (PORT 1-65535 or *), ipc://PATH, inproc://NAME",
    "providers": "list of tensorrt, cuda, cpu, *ExecutionProvider; or [auto]",
    "text": "text",
    "paths": "list of existing files or folders",
}


def range_text(key: Key) -> str:
    kind = "integer" if key.kind == "int" else "number"
    if key.low is not None and key.high is not None:
        return f"{kind} {number_text(key.low)}..{number_text(key.high)}"
    if key.low is not None:
        return f"{kind} {'>' if key.low_exclusive else '>='} {number_text(key.low)}"
    return f"any {kind}"


def number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def reference_markdown() -> str:
    """The reference table of every key (Markdown), as docs/config.md shows it."""
    lines = ["| key | type | default | unit | allowed | meaning |", "|---|---|---|---|---|---|"]
    for key in KEYS:
        if key.kind == "section" and not key.nullable:
            continue
        cells = (
            f"`{key.path}`",
            TYPE_NAMES[key.kind],
            _default_text(key),
            key.unit,
            allowed_text(key).replace("|", "\\|"),
            key.meaning,
        )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _default_text(key: Key) -> str:
    if key.required:
        return "**required**"
    value = key.default
    if value is None:
        return "`null`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, tuple):
        return f"`[{', '.join(value)}]`"
    if isinstance(value, float):
        return f"`{value:g}`"
    return f"`{value}`"
