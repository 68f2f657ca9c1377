"""The benchmark scripts still run and render (their numbers are never asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import bench_service

pytestmark = pytest.mark.unit


# a child process profiling every stage: `make test` runs it, `make check` does not
@pytest.mark.slow
def test_profile_stages_prints_every_stage(repo_root: Path, mnist_data_dir: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.profile_service", "stages", "--data-dir", str(mnist_data_dir)],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    stages = ("multipart parse", "decode (libspng)", "Pillow decode", "MNIST framing", "onnxruntime", "JSON")
    for stage in (*stages, "sum"):
        assert stage in done.stdout


def test_service_table_renders_the_targets() -> None:
    run = {"rps": 100.0, "p50_ms": 5.0, "p99_ms": 9.0, "failures": 0}
    results = {
        "machine": "test box",
        "model": "m",
        "users": 32,
        "rounds": 3,
        "seconds": 10,
        "warmup": 5,
        "workers": 2,
        "ort_threads": 1,
        "cores": 2,
        "batch": 64,
        "in_process": 12_800.0,
        "mean_batch": 4.0,
        "predict": run,
        "baseline": run,
        "predict_batch": run,
        "predict_1w": run,
        "baseline_1w": run,
    }
    text = bench_service.table(json.loads(json.dumps(results)))
    assert "**1.00x** requests/s" in text and "**50%** of the images/s" in text
    assert "v2 infer" not in text  # results from before the v2 rows still render
    results |= {"v2_infer": run, "v2_infer_batch": run, "mean_batch_v2": 2.0}
    text = bench_service.table(json.loads(json.dumps(results)))
    assert "| BentoML v2 infer, 64 PNGs per request, 2 workers | 100 | 6,400 |" in text
    assert "on v2 infer: 2.0 requests per call" in text


def test_v2_payload_is_what_tritonclient_sends() -> None:
    """The benchmark's v2 body parses as the service reads tritonclient's."""
    from service.v2.tensors import input_bytes, read_images, split_body

    body, header_length = bench_service.v2_bytes_request([b"png one", b"two"])
    request, binary = split_body(body, str(header_length), "a")
    (tensor,) = request.inputs
    assert read_images(tensor, input_bytes(tensor, binary, "a"), 10, "a") == [b"png one", b"two"]


def test_a_benchmark_rewrites_only_its_own_section(tmp_path: Path) -> None:
    from benchmarks.report import write_section

    path = tmp_path / "BENCHMARKS.md"
    write_section(path, "<!-- a:start -->", "<!-- a:end -->", "## A\n\n1")
    write_section(path, "<!-- b:start -->", "<!-- b:end -->", "## B\n\n2")
    write_section(path, "<!-- a:start -->", "<!-- a:end -->", "## A\n\n3")
    text = path.read_text()
    assert "## A\n\n3" in text and "## A\n\n1" not in text and "## B\n\n2" in text
    assert text.index("## A") < text.index("## B")
