"""Every knob of the service, from MNIST_* environment variables, read once at start-up."""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path
from typing import Literal

from pydantic import Field, PositiveInt, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICE_DIR = Path(__file__).resolve().parent
# models/ sits beside service/ in the repo and inside a built bento alike.
DEFAULT_MODELS_DIR = SERVICE_DIR.parent / "models"


def cpu_count() -> int:
    """Cores this process may use: its CPU affinity, capped by a cgroup CPU quota.

    A container limited to 2 CPUs on a 64-core node sees 64 cores in its affinity mask and
    its limit only in the cgroup (Kubernetes' resources.limits.cpu becomes cpu.max).
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    quota = cgroup_cpu_limit()
    if quota is not None:
        cores = min(cores, max(1, math.floor(quota)))
    return max(1, cores)


def cgroup_cpu_limit(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPUs allowed by the cgroup (v2 cpu.max, else v1 cfs quota), None when unlimited."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]  # v2: "max 100000"
    except (OSError, ValueError):
        try:
            quota = (root / "cpu" / "cpu.cfs_quota_us").read_text().strip()  # v1: -1 = none
            period = (root / "cpu" / "cpu.cfs_period_us").read_text().strip()
        except OSError:
            return None
    try:
        q, p = float(quota), float(period)
    except ValueError:  # "max"
        return None
    return q / p if q > 0 and p > 0 else None


class Settings(BaseSettings):
    """What an operator may change without touching code (README lists each)."""

    model_config = SettingsConfigDict(env_prefix="MNIST_", extra="ignore", frozen=True)

    # Which model: served.json's choice in models_dir, unless a version or a path is given.
    models_dir: Path = DEFAULT_MODELS_DIR
    model_version: str | None = None
    model_path: Path | None = Field(
        default=None, description="a model.onnx file or a version folder; wins over version"
    )

    # Where it runs.
    provider: Literal["auto", "cpu", "cuda"] = "auto"
    workers: PositiveInt = Field(
        default_factory=cpu_count,
        description="worker processes; default one per core, each with one onnxruntime thread",
    )
    intra_op_threads: PositiveInt | None = Field(
        default=None, description="onnxruntime threads per worker; default cores // workers"
    )
    spinning: bool = Field(default=False, description="let idle onnxruntime threads spin (onnxruntime's default)")

    # Adaptive batching of concurrent /predict calls, and chunking of big batches.
    max_batch_size: int = Field(default=64, ge=2)
    max_latency_ms: PositiveInt = 1000

    # Request limits: bad or hostile input is refused with a 4xx before it costs much.
    max_images_per_request: PositiveInt = 1024
    max_upload_bytes: PositiveInt = 20 * 1024 * 1024
    max_image_pixels: PositiveInt = Field(
        default=16_000_000,
        description="decoded pixels per image: a 12 MP photo, a 4K screenshot (JPEGs count "
        "at the reduced scale they are decoded at)",
    )
    max_request_pixels: PositiveInt = Field(
        default=64_000_000, description="decoded pixels per request, summed over its images"
    )
    decode_threads: PositiveInt = Field(
        default=2, description="requests decoded at once per worker, off the event loop"
    )
    decode_queue: PositiveInt = Field(
        default=32, description="requests that may wait for a decode thread; more get a 503"
    )
    max_bytes_in_flight: PositiveInt = Field(
        default=64 * 1024 * 1024,
        description="request bodies over 64 KiB a worker holds at once (one always fits); more get a 503",
    )
    timeout_s: float = Field(default=60.0, gt=0)

    # Observability.
    # From the served model's calibrated validation answers: about 1% of clean digits fall below it
    # (models/<version>/metadata.json: calibration.low_confidence; docs/training.md).
    low_confidence: float = Field(default=0.91, ge=0.0, le=1.0)
    # The digit detector (a model whose metadata.json has digit_detector).
    digit_threshold: float | None = Field(
        default=None,
        gt=0.0,
        lt=1.0,
        description="digit score under which an image is flagged is_digit=false; "
        "default the served model's fitted threshold (metadata.json digit_detector.threshold)",
    )
    reject_non_digits: bool = Field(
        default=False,
        description="/predict answers 422 for an image flagged as not a digit; "
        "batch endpoints flag each image and never refuse",
    )
    access_log: bool = False
    tracing: bool = Field(default=False, description="OpenTelemetry spans per request (configure BentoML's exporter)")
    gc_freeze: bool = Field(default=True, description="freeze start-up objects out of the garbage collector's walks")

    ui_dir: Path = SERVICE_DIR / "ui"

    # Connections (per worker; docs/hardening.md): slow or idle clients cannot pile up.
    header_timeout_s: float = Field(
        default=10.0, gt=0, description="a request line and headers must arrive within this"
    )
    max_header_bytes: PositiveInt = Field(default=64 * 1024, description="request line plus headers; more gets a 431")
    max_connections: PositiveInt | None = Field(
        default=None,
        description="open connections per worker; at the limit the oldest idle one is closed "
        "(default: what the open-file limit allows, at most 4096)",
    )
    connection_max_age_s: float = Field(
        default=5.0,
        ge=0,
        description="close a kept-alive connection after a response once it "
        "is this old, so that clients spread over new workers; 0 = never",
    )
    security_headers: bool = Field(
        default=True, description="nosniff and X-Frame-Options on every response, a CSP on /ui"
    )

    # Access control (service/server/security.py): off unless keys are given.
    api_keys: SecretStr = Field(default=SecretStr(""), description="comma-separated keys; unset = no access control")
    open_health: bool = Field(default=True, description="/livez, /healthz, /readyz, /v2/health/* need no key")
    open_metrics: bool = Field(default=False, description="/metrics needs no key")
    open_ui: bool = Field(default=False, description="/ui needs no key")

    @model_validator(mode="after")
    def _threads_fit_cores(self) -> Settings:
        """Refuse a thread count that would oversubscribe the cores (workers x threads)."""
        if self.intra_op_threads is not None and self.threads_per_worker * self.workers > max(
            cpu_count(), self.workers
        ):
            raise ValueError(
                f"MNIST_WORKERS ({self.workers}) x MNIST_INTRA_OP_THREADS "
                f"({self.intra_op_threads}) exceeds the {cpu_count()} cores available"
            )
        return self

    @property
    def threads_per_worker(self) -> int:
        """Intra-op threads per worker's session, so that workers x threads <= cores."""
        if self.intra_op_threads is not None:
            return self.intra_op_threads
        return max(1, cpu_count() // self.workers)

    @property
    def keys(self) -> tuple[str, ...]:
        """MNIST_API_KEYS as a tuple, empty when access control is off."""
        return tuple(k.strip() for k in self.api_keys.get_secret_value().split(",") if k.strip())


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The one Settings instance: the environment is read once per process."""
    return Settings()
