"""The texts ``inp-edge ctl`` prints for the replies of the control socket (pure)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from edge.products.calibration import RuleResult, format_preview


def _number(value: Any) -> str:
    return "-" if value is None else f"{value:.6g}" if isinstance(value, float) else str(value)


def format_fields(reply: Mapping[str, Any]) -> str:
    """One ``key: value`` line per field (objects as compact JSON)."""
    lines = []
    for key, value in reply.items():
        if key == "ok":
            continue
        shown = json.dumps(value, ensure_ascii=False) if isinstance(value, Mapping | list) else _number(value)
        lines.append(f"{key}: {shown}")
    return "\n".join(lines) or "ok"


def format_product(product: Mapping[str, Any] | None) -> str:
    if not product:
        return "none (the station's own thresholds)"
    return (
        f"{product.get('name')} v{product.get('version')} (fusion {product.get('fusion')}, "
        f"model {product.get('model_id')}), threshold {_number(product.get('threshold'))} "
        f"({product.get('threshold_source', '')})"
    )


def format_status(reply: Mapping[str, Any]) -> str:
    model = reply.get("model") or {}
    thresholds = reply.get("thresholds") or {}
    counters = reply.get("counters") or {}
    calibration = reply.get("calibration") or {}
    counts = calibration.get("counts") or {}
    lines = [
        f"station {reply.get('station')}: {reply.get('state')}, camera "
        f"{'connected' if reply.get('camera_connected') else 'DISCONNECTED'}, fps {_number(reply.get('fps'))}, "
        f"last seq {reply.get('last_seq')}",
        f"model: {model.get('id')} ({model.get('precision')}) on {', '.join(reply.get('providers') or [])}",
        f"product: {format_product(reply.get('product'))}",
        f"thresholds: image {_number(thresholds.get('image'))}, pixel {_number(thresholds.get('pixel'))}",
        "enrollment: " + (_enrollment_line(reply["enrollment"]) if reply.get("enrollment") else "none"),
        f"calibration: collecting {calibration.get('collecting') or 'nothing'}; "
        + " ".join(f"{key}={value}" for key, value in counts.items()),
        "counters: " + " ".join(f"{key}={value}" for key, value in counters.items()),
    ]
    return "\n".join(lines)


def _enrollment_line(status: Mapping[str, Any]) -> str:
    line = f"{status.get('state')} {status.get('product')}: {status.get('collected')}/{status.get('shots')} parts"
    if status.get("version") is not None:
        line += f", saved as v{status['version']} in {_number(status.get('build_s'))} s"
    if status.get("error"):
        line += f", error: {status['error']}"
    return line


def format_enrollment(reply: Mapping[str, Any]) -> str:
    if reply.get("state") is None:
        return str(reply.get("note", "no enrollment"))
    lines = [f"enrollment {_enrollment_line(reply)}"]
    if reply.get("shot_scores"):
        lines.append("part scores: " + ", ".join(f"{score:.4g}" for score in reply["shot_scores"]))
    if reply.get("threshold") is not None:
        lines.append(f"initial threshold: {_number(reply['threshold'])}")
    for flag in reply.get("flagged") or []:
        lines.append(f"FLAGGED {flag.get('label')}: {flag.get('reason')}")
    if reply.get("fix"):
        lines.append(f"fix: {reply['fix']}")
    return "\n".join(lines)


def format_preview_reply(reply: Mapping[str, Any]) -> str:
    results = [
        RuleResult(
            rule=r["rule"],
            threshold=r["threshold"],
            params=r.get("params") or {},
            false_reject_rate=r["false_reject_rate"],
            escape_rate=r.get("escape_rate"),
            expected_false_reject=r.get("expected_false_reject"),
            note=r.get("note", ""),
        )
        for r in reply.get("rules") or []
    ]
    counts = reply.get("counts") or {}
    head = (
        f"{reply.get('product')}: current threshold {_number(reply.get('current_threshold'))}; scores "
        + " ".join(f"{key}={value}" for key, value in counts.items())
    )
    return head + "\n" + format_preview(results)
