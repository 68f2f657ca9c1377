"""A real Prometheus on loopback scrapes a locally started service and evaluates our rules.

The rules are alerts.yaml's, with every group evaluated each second (the drift group runs every
5 minutes in production); the dashboard's queries are run against the same server.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from harness.images import png_bytes
from harness.mnist import load_mnist
from harness.server import free_port, running_service
from tests.deploy.conftest import need

pytestmark = [pytest.mark.deploy, pytest.mark.slow, pytest.mark.server]

MONITORING = Path(__file__).resolve().parents[2] / "deploy" / "monitoring"


@contextlib.contextmanager
def running_prometheus(target: str, tmp: Path) -> Iterator[str]:
    """Prometheus on a free loopback port scraping `target` (host:port) every second."""
    rules = yaml.safe_load((MONITORING / "alerts.yaml").read_text())
    for group in rules["groups"]:
        group["interval"] = "1s"
    (tmp / "rules.yaml").write_text(yaml.safe_dump(rules))
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(tmp / "rules.yaml")],
        "scrape_configs": [{"job_name": "mnist", "static_configs": [{"targets": [target]}]}],
    }
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [
        need("prometheus"),
        f"--config.file={tmp / 'prometheus.yml'}",
        f"--storage.tsdb.path={tmp / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    with (tmp / "prometheus.log").open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{url}/-/ready", timeout=2).status_code == 200:
                        break
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"prometheus did not start:\n{(tmp / 'prometheus.log').read_text()[-3000:]}")
                time.sleep(0.2)
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def query(prom: str, expr: str) -> list[dict[str, Any]]:
    """An instant query's result vector (fails on a query error)."""
    body = httpx.get(f"{prom}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert body["status"] == "success", (expr, body)
    return body["data"]["result"]


def wait_for(prom: str, expr: str, ok: Any, timeout_s: float = 30.0) -> list[dict[str, Any]]:
    """Poll `expr` until ok(result) holds."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = query(prom, expr)
        if ok(result):
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"{expr} never held; last result: {result}")
        time.sleep(0.5)


def test_prometheus_scrapes_the_service_and_evaluates_the_rules(mnist_data_dir: Path, tmp_path: Path) -> None:
    images, labels = load_mnist(mnist_data_dir, "test")
    pngs = [png_bytes(images[i]) for i in range(40)]
    with running_service() as service, running_prometheus(service.removeprefix("http://"), tmp_path) as prom:
        wait_for(prom, 'up{job="mnist"}', lambda r: r and r[0]["value"][1] == "1")
        sent = 0
        with httpx.Client(base_url=service, timeout=30) as client:
            for _ in range(3):  # three waves a couple of scrapes apart: rates need two samples
                for png in pngs:
                    assert client.post("/predict", files={"image": ("d.png", png, "image/png")}).status_code == 200
                sent += len(pngs)
                time.sleep(2.5)
            bad = client.post("/predict", content=b"not an image", headers={"Content-Type": "image/png"})
            assert bad.status_code == 400

        # The service's own series and BentoML's, as Prometheus stored them.
        wait_for(prom, "sum(mnist_predictions_total)", lambda r: r and float(r[0]["value"][1]) == sent)
        by_digit = {s["metric"]["digit"]: float(s["value"][1]) for s in query(prom, "mnist_predictions_total")}
        assert sum(by_digit.values()) == sent and len(by_digit) == len(set(labels[:40].tolist()))
        wait_for(prom, 'mnist_rejected_requests_total{endpoint="predict", status="400"}', lambda r: r)
        codes = query(prom, 'sum by (http_response_code) (bentoml_service_request_total{endpoint="/predict"})')
        assert {s["metric"]["http_response_code"]: float(s["value"][1]) for s in codes}.get("200") == sent
        assert query(prom, "mnist_prediction_confidence_bucket")

        # The recording rules produce values, and they mean what they say.
        errors = wait_for(prom, "mnist:request_errors:ratio_rate5m", lambda r: r)
        assert float(errors[0]["value"][1]) == 0.0  # the 400 is the caller's, not an error
        p99 = wait_for(prom, "mnist:predict_latency_seconds:p99_rate5m", lambda r: r)
        assert 0 < float(p99[0]["value"][1]) < 10
        low = wait_for(prom, "mnist:low_confidence:ratio_rate30m", lambda r: r)
        assert 0 <= float(low[0]["value"][1]) < 0.2
        shares = wait_for(prom, "mnist:digit_share:ratio_rate1h", lambda r: len(r) == len(by_digit))
        assert sum(float(s["value"][1]) for s in shares) == pytest.approx(1.0)

        # Every rule evaluated without error; no alert fires on healthy traffic.
        groups = httpx.get(f"{prom}/api/v1/rules", timeout=10).json()["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        expected = sum(len(g["rules"]) for g in yaml.safe_load((MONITORING / "alerts.yaml").read_text())["groups"])
        assert len(rules) == expected
        for rule in rules:
            assert rule["health"] == "ok", rule
            assert not rule.get("lastError"), rule
        assert [r["name"] for r in rules if r["type"] == "alerting" and r["state"] != "inactive"] == []

        # The dashboard's queries run on a real server ($__rate_interval and $job filled in as Grafana would).
        dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                query(prom, target["expr"].replace("$__rate_interval", "1m").replace("$job", ".*"))
        rate = query(
            prom, dashboard["panels"][0]["targets"][0]["expr"].replace("$__rate_interval", "1m").replace("$job", ".*")
        )
        assert rate and float(rate[0]["value"][1]) > 0  # requests/s by endpoint: /predict was busy
