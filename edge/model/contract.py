"""Contract 1: the names that link an exported model to the device runtime.

Defined once here; ``export/`` imports them, ``edge/`` never re-declares them.
"""

from __future__ import annotations

SCHEMA_VERSION = "1"

INPUT_IMAGE = "image"  # uint8 (1, H, W, 3) RGB
OUTPUT_ANOMALY_MAP = "anomaly_map"  # float32 (1, H, W), higher = more anomalous
OUTPUT_PRED_SCORE = "pred_score"  # float32 (1,), mean of the top 1 % of the map
OUTPUT_PATCH_FEATURES = "patch_features"  # optional float32 (1, N, C)
OUTPUT_INP_DISTANCE = "inp_distance"  # optional float32 (1, H, W), zero-shot map

REQUIRED_OUTPUTS = (OUTPUT_ANOMALY_MAP, OUTPUT_PRED_SCORE)
OPTIONAL_OUTPUTS = (OUTPUT_PATCH_FEATURES, OUTPUT_INP_DISTANCE)

# metadata_props keys (values are strings; *_json values are JSON documents)
META_SCHEMA_VERSION = "inp_edge.schema_version"
META_INPUT_SIZE = "inp_edge.input_size"  # "HxW", e.g. "256x256"
META_ENCODER = "inp_edge.encoder"  # e.g. "efficientnet_lite0"
META_PRECISION = "inp_edge.precision"  # fp32 | fp16 | int8
META_TRAINING_DATA = "inp_edge.training_data_json"  # categories, image counts, recipe
META_SCORE_STATS = "inp_edge.score_stats_json"  # raw-score statistics of training good parts
META_MODEL_ID = "inp_edge.model_id"  # short human id, e.g. "bottle-effl0-20261122"
META_PREPROCESS = "inp_edge.preprocess_json"  # resize_px / crop_px the device must apply

REQUIRED_METADATA = (
    META_SCHEMA_VERSION,
    META_INPUT_SIZE,
    META_ENCODER,
    META_PRECISION,
    META_TRAINING_DATA,
    META_SCORE_STATS,
    META_MODEL_ID,
    META_PREPROCESS,
)
