"""service.settings: MNIST_* variables, validated once, threads that fit the cores."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from service import settings as settings_module
from service.settings import Settings, cgroup_cpu_limit, cpu_count

pytestmark = pytest.mark.unit


def test_defaults_serve_the_repo_models(monkeypatch) -> None:
    for key in ("MNIST_MODELS_DIR", "MNIST_MODEL_VERSION", "MNIST_MAX_BATCH_SIZE"):
        monkeypatch.delenv(key, raising=False)
    s = Settings()
    assert s.models_dir.name == "models" and s.model_version is None
    assert s.max_images_per_request == 1024 and s.provider == "auto"


def test_environment_overrides(monkeypatch) -> None:
    monkeypatch.setenv("MNIST_MAX_BATCH_SIZE", "16")
    monkeypatch.setenv("MNIST_PROVIDER", "cpu")
    monkeypatch.setenv("MNIST_MAX_LATENCY_MS", "25")
    s = Settings()
    assert (s.max_batch_size, s.provider, s.max_latency_ms) == (16, "cpu", 25)


@pytest.mark.parametrize(
    ("key", "value"),
    [("MNIST_PROVIDER", "tpu"), ("MNIST_MAX_BATCH_SIZE", "1"), ("MNIST_WORKERS", "0"), ("MNIST_LOW_CONFIDENCE", "2")],
)
def test_invalid_values_stop_start_up(monkeypatch, key, value) -> None:
    monkeypatch.setenv(key, value)
    with pytest.raises(ValidationError):
        Settings()


def test_threads_default_to_cores_per_worker(monkeypatch) -> None:
    monkeypatch.setenv("MNIST_WORKERS", "1")
    assert Settings().threads_per_worker == cpu_count()
    monkeypatch.setenv("MNIST_WORKERS", str(cpu_count()))
    assert Settings().threads_per_worker == 1


def test_oversubscribed_threads_are_refused(monkeypatch) -> None:
    monkeypatch.setenv("MNIST_WORKERS", str(cpu_count()))
    monkeypatch.setenv("MNIST_INTRA_OP_THREADS", "2")
    with pytest.raises(ValidationError, match="exceeds"):
        Settings()


def test_workers_default_to_one_per_core_with_one_thread(monkeypatch) -> None:
    monkeypatch.delenv("MNIST_WORKERS", raising=False)
    monkeypatch.delenv("MNIST_INTRA_OP_THREADS", raising=False)
    s = Settings()
    assert s.workers == cpu_count() and s.threads_per_worker == 1


@pytest.mark.parametrize(
    ("files", "limit"),
    [
        ({"cpu.max": "max 100000\n"}, None),  # cgroup v2, no limit
        ({"cpu.max": "200000 100000\n"}, 2.0),  # Kubernetes limits.cpu: 2
        ({"cpu.max": "50000 100000\n"}, 0.5),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),  # v1
        ({"cpu/cpu.cfs_quota_us": "300000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 3.0),
        ({}, None),  # not Linux, or no cgroup mounted
    ],
)
def test_cgroup_cpu_limit(tmp_path, files, limit) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert cgroup_cpu_limit(tmp_path) == limit


def test_a_cgroup_quota_caps_the_cores(monkeypatch) -> None:
    monkeypatch.setattr(settings_module, "cgroup_cpu_limit", lambda: 0.5)
    assert cpu_count() == 1
    monkeypatch.setattr(settings_module, "cgroup_cpu_limit", lambda: 1.0)
    assert cpu_count() == 1
