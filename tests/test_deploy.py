"""The operator's files in deploy/: alert rules that Prometheus accepts, and a Grafana
dashboard and rules that only query metrics engram exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import REQUIRE_SERVICES
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

from engram.server.metrics import Metrics

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "engram-dashboard.json"
# A metric name in PromQL: an identifier followed by a selector, a range or a bracket.
_NAME = re.compile(r"\b((?:engram|process)_[a-z0-9_]+)\b")


def exported_names(tmp_path: Path) -> set[str]:
    """Every sample name /metrics can carry, with every optional collector enabled."""
    metrics = Metrics(
        pending_jobs=lambda: {"queued": 0, "running": 0},
        pool_stats=lambda: {
            "pool_size": 2,
            "pool_available": 1,
            "pool_max": 4,
            "requests_waiting": 0,
        },
        data_dir=lambda: tmp_path,
    )
    names: set[str] = set()
    for family in metrics.registry.collect():
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
        if isinstance(family, CounterMetricFamily) or family.type == "counter":
            names.add(family.name + "_total")
        if isinstance(family, HistogramMetricFamily) or family.type == "histogram":
            names.update(family.name + s for s in ("_bucket", "_count", "_sum"))
    return names


def queried_names(text: str) -> set[str]:
    return set(_NAME.findall(text))


def test_alert_rules_pass_promtool() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        if REQUIRE_SERVICES:
            pytest.fail("promtool is required (Debian package prometheus)")
        pytest.skip("promtool missing (Debian package prometheus)")
    result = subprocess.run(
        [promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", [ALERTS, DASHBOARD], ids=["alerts", "dashboard"])
def test_every_queried_metric_is_exported(path: Path, tmp_path: Path) -> None:
    text = path.read_text()
    if path.suffix == ".json":
        dashboard = json.loads(text)
        text = "\n".join(
            target["expr"] for panel in dashboard["panels"] for target in panel["targets"]
        )
        assert dashboard["panels"], "an empty dashboard"
    queried = queried_names(text)
    assert queried, "no metric found in " + path.name
    missing = queried - exported_names(tmp_path)
    assert not missing, f"{path.name} queries metrics engram does not export: {sorted(missing)}"


def test_alerts_cover_what_an_operator_needs() -> None:
    text = ALERTS.read_text()
    for metric in (
        "engram_http_requests_total",  # error rate
        "engram_http_request_duration_seconds_bucket",  # latency
        "engram_jobs_finished_total",  # job failures
        "engram_job_queue_depth",  # queue age
        "engram_llm_fallbacks_total",  # LLM fallback rate
        "engram_data_dir_free_bytes",  # disk
    ):
        assert metric in text, metric
