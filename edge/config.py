"""The station config (contract 3): one YAML file per station, loaded into frozen dataclasses.

``check_config_file`` collects every issue (syntax, unknown keys with a suggestion, types, ranges,
missing required keys and files, endpoints, the ROI against the frame) and never stops at the first;
``load_config`` raises one ``ConfigError`` listing them all. Keys, defaults and allowed values come
from the single table in ``edge/config_schema.py``; the reference is docs/config.md. Relative paths
are relative to the config file's folder and are stored absolute.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.atomic import write_text_atomic
from edge.camera.genicam_settings import DeviceSelector, GenICamSettings, TriggerSettings
from edge.config_checks import ConfigIssue, cross_checks, issues_error, unknown_key
from edge.config_schema import DEFAULTS as D
from edge.config_schema import KEYS, Key, allowed_text, children, reference_markdown
from edge.config_values import check_value, resolve_path
from edge.config_yaml import (
    FILE,
    config_to_dict,
    config_to_yaml,
    parse_yaml,
    read_yaml_text,
    with_line,
)
from edge.model.preprocess import Roi

# source.genicam and its device / trigger sections are the camera's own settings values
# (edge/camera/genicam_settings.py: GenICamSettings, DeviceSelector, TriggerSettings).


@dataclass(frozen=True)
class SourceConfig:
    kind: str = D["source.kind"]
    rate_pps: float = D["source.rate_pps"]
    parts: int = D["source.parts"]
    defect_fraction: float = D["source.defect_fraction"]
    size_px: int = D["source.size_px"]
    seed: int = D["source.seed"]
    path: Path | None = D["source.path"]
    loop: bool = D["source.loop"]
    genicam: GenICamSettings = field(default_factory=GenICamSettings)


@dataclass(frozen=True)
class ModelConfig:
    path: Path
    providers: tuple[str, ...] = D["model.providers"]
    allow_cpu_fallback: bool = D["model.allow_cpu_fallback"]
    intra_op_threads: int = D["model.intra_op_threads"]
    spin_wait: bool = D["model.spin_wait"]
    warmup_runs: int = D["model.warmup_runs"]
    cache_dir: Path | None = D["model.cache_dir"]  # None: StationConfig.cache_dir


@dataclass(frozen=True)
class ThresholdsConfig:
    image: float | None = D["inspection.thresholds.image"]  # None: from the model's statistics
    pixel: float | None = D["inspection.thresholds.pixel"]  # None: the image threshold
    min_region_area_px: float = D["inspection.thresholds.min_region_area_px"]


@dataclass(frozen=True)
class InspectionConfig:
    product: str = D["inspection.product"]
    roi: Roi | None = None
    fit: str = D["inspection.fit"]
    deadline_ms: float = D["inspection.deadline_ms"]
    thresholds: ThresholdsConfig = field(default_factory=ThresholdsConfig)


@dataclass(frozen=True)
class QueuesConfig:
    inspect: int = D["queues.inspect"]
    output: int = D["queues.output"]


@dataclass(frozen=True)
class PublishConfig:
    endpoint: str = D["publish.endpoint"]
    send_hwm_messages: int = D["publish.send_hwm_messages"]
    overlays: bool = D["publish.overlays"]
    heartbeat_period_s: float = D["publish.heartbeat_period_s"]
    curve_secret_key_file: Path | None = D["publish.curve_secret_key_file"]
    curve_clients_dir: Path | None = D["publish.curve_clients_dir"]


@dataclass(frozen=True)
class ControlConfig:
    endpoint: str = D["control.endpoint"]
    ring_size: int = D["control.ring_size"]
    allow_remote: bool = D["control.allow_remote"]
    curve_secret_key_file: Path | None = D["control.curve_secret_key_file"]
    curve_clients_dir: Path | None = D["control.curve_clients_dir"]


@dataclass(frozen=True)
class ArchiveConfig:
    enabled: bool = D["archive.enabled"]
    folder: Path | None = D["archive.folder"]  # None: StationConfig.archive_folder
    quota_mb: float = D["archive.quota_mb"]
    sample_pass_every: int = D["archive.sample_pass_every"]


@dataclass(frozen=True)
class LoggingConfig:
    level: str = D["logging.level"]


@dataclass(frozen=True)
class NotifyConfig:
    stall_s: float = D["notify.stall_s"]
    engine_build_max_s: float = D["notify.engine_build_max_s"]


@dataclass(frozen=True)
class MetricsConfig:
    enabled: bool = D["metrics.enabled"]
    host: str = D["metrics.host"]
    port: int = D["metrics.port"]


@dataclass(frozen=True)
class StationConfig:
    """One station's settings. Paths are absolute when loaded from a file."""

    station: str
    state_dir: Path
    model: ModelConfig
    source: SourceConfig = field(default_factory=SourceConfig)
    inspection: InspectionConfig = field(default_factory=InspectionConfig)
    queues: QueuesConfig = field(default_factory=QueuesConfig)
    publish: PublishConfig = field(default_factory=PublishConfig)
    control: ControlConfig = field(default_factory=ControlConfig)
    archive: ArchiveConfig = field(default_factory=ArchiveConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    notify: NotifyConfig = field(default_factory=NotifyConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)

    @property
    def cache_dir(self) -> Path:
        """The TensorRT engine cache in use: ``model.cache_dir``, else ``<state_dir>/cache``."""
        return self.model.cache_dir or self.state_dir / "cache"

    @property
    def archive_folder(self) -> Path:
        """Where archived images go: ``archive.folder``, else ``<state_dir>/archive``."""
        return self.archive.folder or self.state_dir / "archive"


# The dataclass of each section; its field names are the section's key names (a test checks it).
SECTION_TYPES: dict[str, type] = {
    "": StationConfig,
    "source": SourceConfig,
    "source.genicam": GenICamSettings,
    "source.genicam.device": DeviceSelector,
    "source.genicam.trigger": TriggerSettings,
    "model": ModelConfig,
    "inspection": InspectionConfig,
    "inspection.roi": Roi,
    "inspection.thresholds": ThresholdsConfig,
    "queues": QueuesConfig,
    "publish": PublishConfig,
    "control": ControlConfig,
    "archive": ArchiveConfig,
    "logging": LoggingConfig,
    "notify": NotifyConfig,
    "metrics": MetricsConfig,
}


def check_config_file(path: str | Path) -> tuple[StationConfig | None, list[ConfigIssue]]:
    """(the config, []) when ``path`` is a valid station config, else (None, every issue found)."""
    path = Path(path)
    text, issues = read_yaml_text(path)
    if text is None:
        return None, issues
    base_dir = resolve_path(".", path.absolute().parent)
    return check_config_text(text, base_dir)


def check_config_text(text: str, base_dir: Path) -> tuple[StationConfig | None, list[ConfigIssue]]:
    """Like ``check_config_file`` for YAML text whose relative paths are relative to ``base_dir``."""
    data, lines, duplicates = parse_yaml(text)
    if any(issue.key_path == FILE for issue in duplicates):  # a syntax error: nothing more to check
        return None, duplicates
    config, issues = check_config_data(data, base_dir)
    issues = duplicates + [with_line(issue, lines) for issue in issues]
    issues.sort(key=lambda issue: (issue.line is None, issue.line or 0))  # top to bottom, defaults last
    return (config if not issues else None), issues


def check_config_data(data: Any, base_dir: Path) -> tuple[StationConfig | None, list[ConfigIssue]]:
    """Check an already parsed config (a mapping); relative paths are relative to ``base_dir``."""
    if not isinstance(data, Mapping):
        got = "an empty file" if data is None else f"a {type(data).__name__}"
        return None, [ConfigIssue(FILE, f"must be a mapping of keys, got {got}", "station: NAME, model: ...")]
    values: dict[str, Any] = {}
    issues: list[ConfigIssue] = []
    _check_section("", data, base_dir, values, issues)
    issues += cross_checks(values)
    if issues:
        return None, issues
    return _build("", values), []


def load_config(path: str | Path) -> StationConfig:
    """The station config at ``path``; a ``ConfigError`` listing every issue when it is not valid."""
    config, issues = check_config_file(path)
    if config is None:
        raise issues_error("station config", path, issues, "docs/config.md")
    return config


def _check_section(
    section: str, raw: Mapping[Any, Any], base_dir: Path, values: dict[str, Any], issues: list[ConfigIssue]
) -> None:
    keys = children(section)
    names = [key.name for key in keys]
    issues.extend(_unknown_key(section, name, names) for name in raw if name not in names)
    for key in keys:
        if key.name not in raw:
            if key.required:
                issues.append(ConfigIssue(key.path, "is required and missing", allowed_text(key)))
            elif key.kind == "section":
                _check_subsection(key, key.default, base_dir, values, issues)
            else:
                values[key.path] = _default_value(key, base_dir)
        elif key.kind == "section":
            _check_subsection(key, raw[key.name], base_dir, values, issues)
        else:
            value, problem = check_value(key, raw[key.name], base_dir)
            if problem is None:
                values[key.path] = value
            else:
                issues.append(ConfigIssue(key.path, problem, allowed_text(key)))


def _check_subsection(
    key: Key, raw: Any, base_dir: Path, values: dict[str, Any], issues: list[ConfigIssue]
) -> None:
    if raw is None and key.nullable:
        values[key.path] = None
    elif isinstance(raw, Mapping):
        _check_section(key.path, raw, base_dir, values, issues)
    else:
        issues.append(ConfigIssue(key.path, f"must be a mapping, got {raw!r}", allowed_text(key)))


def _default_value(key: Key, base_dir: Path) -> Any:
    if key.kind == "path" and key.default is not None:
        return resolve_path(key.default, base_dir)
    return key.default


def _unknown_key(section: str, name: Any, names: list[str]) -> ConfigIssue:
    elsewhere = [key.path for key in KEYS if key.name == name and key.parent != section]
    return unknown_key(section, name, names, elsewhere)


def _build(section: str, values: Mapping[str, Any]) -> Any:
    if values.get(section, 0) is None:  # a nullable section set to null
        return None
    kwargs = {}
    for key in children(section):
        kwargs[key.name] = _build(key.path, values) if key.kind == "section" else values[key.path]
    return SECTION_TYPES[section](**kwargs)


def write_config(config: StationConfig, path: str | Path) -> Path:
    """Write ``config`` atomically to ``path``; paths under its folder are written relative to it."""
    path = Path(path)
    return write_text_atomic(path, config_to_yaml(config, relative_to=path.absolute().parent))


__all__ = [
    "ArchiveConfig",
    "ConfigIssue",
    "ControlConfig",
    "InspectionConfig",
    "LoggingConfig",
    "MetricsConfig",
    "ModelConfig",
    "NotifyConfig",
    "PublishConfig",
    "QueuesConfig",
    "SourceConfig",
    "StationConfig",
    "ThresholdsConfig",
    "check_config_data",
    "check_config_file",
    "check_config_text",
    "config_to_dict",
    "config_to_yaml",
    "load_config",
    "reference_markdown",
    "write_config",
]
