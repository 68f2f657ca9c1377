"""The alert rules pass promtool and their unit tests; the Operator's copy and the dashboard agree."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.conftest import need

pytestmark = pytest.mark.deploy

MONITORING = Path(__file__).resolve().parents[2] / "deploy" / "monitoring"
ALERTS = MONITORING / "alerts.yaml"


def test_promtool_checks_the_rules() -> None:
    result = subprocess.run([need("promtool"), "check", "rules", str(ALERTS)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_alerts_fire_on_their_series_and_not_before() -> None:
    """`promtool test rules alerts.test.yaml`: error rate, p99, low confidence and digit-mix drift."""
    result = subprocess.run(
        [need("promtool"), "test", "rules", "alerts.test.yaml"], cwd=MONITORING, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    tested = set(re.findall(r"alertname: (\w+)", (MONITORING / "alerts.test.yaml").read_text()))
    alerts = {r["alert"] for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"] if "alert" in r}
    assert alerts == tested, f"alerts without a unit test: {alerts - tested}"


def test_prometheusrule_carries_the_same_rules() -> None:
    """prometheusrule.yaml (for the Operator) is alerts.yaml's groups, unchanged."""
    rule = yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())
    assert rule["kind"] == "PrometheusRule"
    assert rule["spec"]["groups"] == yaml.safe_load(ALERTS.read_text())["groups"]


def test_dashboard_queries_known_series() -> None:
    """Every dashboard query names a series the service exports or a rule records."""
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    recorded = {r["record"] for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"] if "record" in r}
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert exprs
    for expr in exprs:
        names = set(re.findall(r"\b((?:bentoml_service|mnist)[\w:]*)\b", expr))
        assert names, expr
        for name in names:
            assert name.startswith(("bentoml_service_", "mnist_")) or name in recorded, (name, expr)
