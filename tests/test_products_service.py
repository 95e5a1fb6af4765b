"""Products inside the real running service: enrollment, product change, calibration, bad requests.

Every test starts the real service (tests/service_harness.py) on a generated line with a model that
has patch_features, talks to its control socket and reads its verdicts on the PUB socket.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.products.product import ProductError
from edge.products.registry import ProductRegistry
from edge.publish.listen import Listener
from edge.publish.messages import VERDICT
from tests.product_service_support import (
    ask,
    ask_raw,
    product_station,
    save_product,
    verdicts_until,
    wait_until,
)
from tests.service_harness import collect_verdicts, running_service


def test_enrollment_through_the_control_socket_builds_saves_and_activates_a_product(tmp_path: Path) -> None:
    config = product_station(tmp_path, rate_pps=30.0)
    with Listener(f"ipc://{tmp_path}/pub", kinds=(VERDICT,)) as listener, running_service(config):
        # the subscription is live before the enrollment starts: 3 parts at 30 parts/s can switch the
        # product before a subscriber that joined late has seen a verdict of the default one
        ready = verdicts_until(listener, lambda header: header["verdict"] != "error")
        started = ask(
            tmp_path, "enroll_start", product="washer2", shots=3, max_memory_tokens=200, activate=True
        )
        assert started == {"ok": True, "collecting": 3, "product": "washer2", "fusion": "fused"}
        status = wait_until(
            lambda: (s := ask(tmp_path, "enroll_status"))["state"] in ("done", "failed") and s
        )
        assert status["state"] == "done", status
        after = verdicts_until(listener, lambda header: header["product_version"] == 1)
    kept = 3 - len(status["flagged"])  # a part far above the others is flagged and left out
    assert status["version"] == 1 and status["collected"] == 3 and len(status["frames"]) == 3
    assert status["activated"] is True and len(status["shot_scores"]) == kept >= 2
    flagged = {flag["label"] for flag in status["flagged"]}
    assert status["shot_labels"] == [f"frame {f}" for f in status["frames"] if f"frame {f}" not in flagged]
    saved = ProductRegistry(tmp_path / "state").load("washer2")
    assert saved.version == 1 and saved.fusion == "fused" and saved.memory.shape == (200, 3)
    assert saved.enrollment["shots"] == kept and "station t1" in saved.enrollment["source"]
    header = after[-1]
    assert header["product"] == "washer2" and header["verdict"] in ("pass", "fail")
    assert header["threshold"] == pytest.approx(saved.thresholds.image, rel=1e-5)
    assert header["threshold_source"].startswith("product washer2 v1:")
    assert header["latency_ms"]["product_ms"] > 0
    before = [h for h in [*ready, *after[:-1]] if h["verdict"] != "error"]  # an overrun carries no thresholds
    assert before and all(h["product"] == "default" and h["product_version"] is None for h in before)
    assert all(h["threshold"] == 0.75 and "product_ms" not in h["latency_ms"] for h in before)


def test_a_product_change_is_acknowledged_with_the_frame_where_it_took_effect(tmp_path: Path) -> None:
    config = product_station(tmp_path, product="lenient")
    save_product(tmp_path, "lenient", 5.0)  # every part passes
    save_product(tmp_path, "strict", 0.3)  # every part fails
    with Listener(f"ipc://{tmp_path}/pub", kinds=(VERDICT,)) as listener, running_service(config):
        first = [h for h in collect_verdicts(listener, count=2) if h["verdict"] != "error"]
        assert all(h["product"] == "lenient" and h["product_version"] == 1 for h in first)
        reply = ask(tmp_path, "product", name="strict")
        assert reply["ok"] and reply["product"] == "strict" and reply["version"] == 1 and not reply["pending"]
        switched_at = reply["effective_from_frame"]
        seen = verdicts_until(listener, lambda header: header["frame_id"] >= switched_at + 3)
        status = ask(tmp_path, "status")
        listing = ask(tmp_path, "products")
    decided = [h for h in first + seen if h["reason"] == ""]  # an overrun (under load) is decided by nothing
    assert any(h["frame_id"] >= switched_at for h in decided) and any(
        h["frame_id"] < switched_at for h in decided
    )
    for header in decided:
        strict = header["frame_id"] >= switched_at
        expected = ("strict", 0.3, "fail") if strict else ("lenient", 5.0, "pass")
        assert (header["product"], header["threshold"], header["verdict"]) == expected, header
    assert status["product"]["name"] == "strict" and status["product"]["threshold"] == 0.3
    assert status["thresholds"]["image"] == 0.3 and status["product_configured"] == "lenient"
    assert listing["active"] == "strict" and [p["name"] for p in listing["products"]] == ["lenient", "strict"]
    assert all(p["fits_model"] for p in listing["products"])


def test_calibration_collect_preview_apply_then_rollback(tmp_path: Path) -> None:
    config = product_station(tmp_path, product="washer")
    save_product(tmp_path, "washer", 5.0)
    with Listener(f"ipc://{tmp_path}/pub", kinds=(VERDICT,)) as listener, running_service(config):
        assert ask(tmp_path, "calibrate_start", label="good")["collecting"] == "good"
        wait_until(lambda: ask(tmp_path, "status")["calibration"]["counts"]["good"] >= 12)
        ask(tmp_path, "calibrate_start", label="bad")
        wait_until(lambda: ask(tmp_path, "status")["calibration"]["counts"]["bad"] >= 2)
        stopped = ask(tmp_path, "calibrate_stop")
        preview = ask(tmp_path, "preview", quantile=0.9)
        applied = ask(tmp_path, "apply", rule="quantile", quantile=0.9)
        new = verdicts_until(
            listener, lambda h: h["frame_id"] >= applied["effective_from_frame"] and not h["reason"]
        )[-1]
        rolled = ask(tmp_path, "rollback")
        old = verdicts_until(
            listener, lambda h: h["frame_id"] >= rolled["effective_from_frame"] and not h["reason"]
        )[-1]
    assert stopped["collecting"] is None and stopped["counts"]["good"] >= 12
    assert [rule["rule"] for rule in preview["rules"]] == ["quantile", "f1", "tail"]
    assert preview["current_threshold"] == 5.0 and preview["counts"] == stopped["counts"]
    quantile = preview["rules"][0]
    assert quantile["params"]["quantile"] == 0.9 and quantile["threshold"] < 5.0
    assert applied["version"] == 2 and applied["threshold"] == pytest.approx(quantile["threshold"])
    assert (new["product_version"], new["threshold"]) == (2, pytest.approx(applied["threshold"], rel=1e-5))
    assert new["threshold_source"].startswith("product washer v2: quantile calibration")
    assert rolled["version"] == 3 and rolled["threshold"] == 5.0 and rolled["rolled_back_to"] == 1
    assert (old["product_version"], old["threshold"], old["verdict"]) == (3, 5.0, "pass")
    history = ProductRegistry(tmp_path / "state").load("washer", version=2).calibrations
    assert history[-1].rule == "quantile" and history[-1].n_good == stopped["counts"]["good"]


def test_bad_requests_get_error_replies_while_verdicts_keep_flowing(tmp_path: Path) -> None:
    config = product_station(tmp_path)
    save_product(tmp_path, "washer", 5.0)
    save_product(tmp_path, "foreign", 5.0, sha256="0" * 64)
    bad_requests = [
        (b"{not json", "not UTF-8 JSON"),
        (b'{"cmd": "self-destruct"}', "unknown command"),
        (b'{"cmd": "product"}', "'name' is missing"),
        (b'{"cmd": "product", "name": "ghost"}', "no product 'ghost'"),
        (b'{"cmd": "product", "name": "foreign"}', "was enrolled with model"),
        (b'{"cmd": "product", "name": "washer", "versoin": 1}', "unknown argument(s) versoin"),
        (b'{"cmd": "enroll_start", "product": "x", "shots": 0}', "'shots' is 0"),
        (b'{"cmd": "apply", "rule": "tail"}', "no product is active"),
        (b'{"cmd": "calibrate_start", "label": "maybe"}', "'label' is 'maybe'"),
    ]
    with Listener(f"ipc://{tmp_path}/pub", kinds=(VERDICT,)) as listener, running_service(config):
        seqs = [h["seq"] for h in collect_verdicts(listener, count=2)]
        for raw, expected in bad_requests:
            reply = ask_raw(tmp_path, raw)
            assert reply["ok"] is False and expected in reply["error"] and reply["fix"], (raw, reply)
            seqs += [h["seq"] for h in collect_verdicts(listener, count=1)]
        status = ask(tmp_path, "status")
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # one verdict after each refusal, none lost
    assert status["state"] == "running" and status["product"] is None and status["last_seq"] >= seqs[-1]


def test_a_configured_product_of_another_model_refuses_the_start(tmp_path: Path) -> None:
    config = product_station(tmp_path, product="foreign")
    save_product(tmp_path, "foreign", 5.0, sha256="0" * 64)
    with running_service(config) as running, pytest.raises(ProductError) as refused:
        running.wait()
    assert "was enrolled with model" in refused.value.message and "re-enroll" in refused.value.fix


def test_enroll_stop_builds_from_the_parts_already_in_and_cancel_drops_them(tmp_path: Path) -> None:
    config = product_station(tmp_path, rate_pps=30.0)
    with running_service(config):
        ask(tmp_path, "enroll_start", product="partial", shots=64, fusion="inp")
        wait_until(lambda: ask(tmp_path, "enroll_status")["collected"] >= 2)
        built = ask(tmp_path, "enroll_stop")
        ask(tmp_path, "enroll_start", product="dropped", shots=64, fusion="inp")
        cancelled = ask(tmp_path, "enroll_stop", cancel=True)
        status = ask(tmp_path, "status")
    assert built["state"] == "done" and 2 <= built["collected"] < 64 and built["activated"] is False
    assert len(built["frames"]) == built["collected"] and built["version"] == 1
    assert cancelled["state"] == "cancelled" and "version" not in cancelled
    assert status["enrollment"]["state"] == "cancelled" and status["product"] is None  # not activated
    registry = ProductRegistry(tmp_path / "state")
    assert registry.names() == ["partial"]
    assert registry.load("partial").enrollment["shots"] == built["collected"]
