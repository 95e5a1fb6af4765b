"""The station's model and its own thresholds, set up from the station config (used by the service
and the offline product commands)."""

from __future__ import annotations

from dataclasses import asdict

from edge.config import StationConfig
from edge.decision import Thresholds, default_thresholds
from edge.model.detector import check_providers
from edge.model.session import LoadedModel, SessionSettings, open_session, resolve_providers


def load_model(config: StationConfig) -> LoadedModel:
    """Open, check and warm up the station's model; refuse a silent fallback to the CPU."""
    import onnxruntime as ort

    m = config.model
    settings = SessionSettings(
        providers=m.providers,
        intra_op_threads=m.intra_op_threads,
        cache_dir=config.cache_dir,
        warmup_runs=m.warmup_runs,
        spin_wait=m.spin_wait,
    )
    requested = resolve_providers(settings.providers, ort.get_available_providers())
    loaded = open_session(m.path, settings)
    check_providers(requested, loaded.providers_in_use, allow_cpu_fallback=m.allow_cpu_fallback)
    return loaded


def settle_thresholds(config: StationConfig, loaded: LoadedModel) -> Thresholds:
    """The station's thresholds, or defaults from the model's good-part statistics (stated)."""
    meta, given = loaded.info.meta, config.inspection.thresholds
    default = default_thresholds(meta.score_stats, meta.model_id, min_region_area_px=given.min_region_area_px)
    if given.image is None:
        return default if given.pixel is None else Thresholds(**{**asdict(default), "pixel": given.pixel})
    pixel = given.pixel if given.pixel is not None else given.image
    return Thresholds(
        image=given.image,
        pixel=pixel,
        min_region_area_px=given.min_region_area_px,
        center=meta.score_stats.p50,
        source="station config",
    )
