"""A short locust run through `python -m loadtests.run` against the local service: plumbing and budgets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest

pytestmark = [pytest.mark.load, pytest.mark.slow, pytest.mark.server]


@pytest.fixture(scope="module")
def local_url(service_url: str) -> str:
    """Load only ever targets this machine, even when MNIST_SERVICE_URL names a deployment."""
    if urlparse(service_url).hostname not in ("127.0.0.1", "localhost", "::1"):
        pytest.skip(f"load tests only target a local service, not {service_url}")
    return service_url


def _run(repo_root: Path, mnist_data_dir: Path, out: Path, *args: str) -> tuple[int, str, dict]:
    cmd = [
        sys.executable,
        "-m",
        "loadtests.run",
        "--data-dir",
        str(mnist_data_dir),
        "--results",
        str(out),
        "--progress-every",
        "5",
        *args,
    ]
    proc = subprocess.run(cmd, cwd=repo_root, capture_output=True, text=True, timeout=180)
    output = proc.stderr + proc.stdout  # the verdict (stdout) last, where a failure shows it
    guard = out / "guard.json"
    return proc.returncode, output, json.loads(guard.read_text()) if guard.exists() else {}


class TestSmoke:
    def test_twenty_seconds_within_budgets(
        self, repo_root: Path, mnist_data_dir: Path, local_url: str, tmp_path: Path
    ) -> None:
        code, output, guard = _run(
            repo_root,
            mnist_data_dir,
            tmp_path,
            "--host",
            local_url,
            "--users",
            "4",
            "--spawn-rate",
            "4",
            "--duration",
            "20",
            "--p99-ms",
            "2000",
            "--non-digit-share",
            "0.2",
        )
        assert code == 0, output[-3000:]
        assert guard["passed"] and guard["http_failures"] == 0
        routes = set(guard["per_route"])
        wanted = {
            "/predict [png28]",
            "/predict [photo-like]",
            "/predict_pixels",
            "/predict [non-digit]",
            "/read_number",
        }
        assert wanted <= routes, routes
        assert guard["numbers_checked"] > 0 and guard["number_accuracy"] is not None, guard
        assert guard["non_digits_sent"] > 0
        if guard["detector"]:  # the served model has a digit detector: its answers were judged
            assert guard["non_digit_checks"] == "checked" and guard["non_digits_checked"] > 0, guard
        else:
            assert guard["non_digit_checks"].startswith("skipped: answers carry is_digit null"), guard
            assert "non-digit checks skipped" in output
        assert guard["digits_checked"] > 50 and guard["photo_uploads_checked"] > 5
        assert guard["accuracy"] is not None and guard["recorded_accuracy"] is not None
        for name in ("report.html", "locust_stats.csv", "locust_failures.csv"):
            assert (tmp_path / name).stat().st_size > 0, name
        assert "PASS: 4 users" in output

    def test_budget_overrun_fails_the_run(
        self, repo_root: Path, mnist_data_dir: Path, local_url: str, tmp_path: Path
    ) -> None:
        code, output, guard = _run(
            repo_root,
            mnist_data_dir,
            tmp_path,
            "--host",
            local_url,
            "--users",
            "2",
            "--spawn-rate",
            "2",
            "--duration",
            "6",
            "--p99-ms",
            "1",
        )
        assert code == 1, output[-3000:]
        assert not guard["passed"]
        assert any("p99" in reason for reason in guard["reasons"]), guard["reasons"]
        assert "FAIL:" in output
