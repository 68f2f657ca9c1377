"""The peer benchmark lists its peers, speaks each one's request format and renders its report,
with no peer installed (CI never installs TorchServe, Ray and the rest; numbers are never asserted)."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks import bench_peers
from benchmarks.bench_service import BOUNDARY, multipart
from benchmarks.peers import registry, report

pytestmark = pytest.mark.unit

PNGS = [b"\x89PNG one", b"\x89PNG two", b"\x89PNG three"]


def test_list_names_every_peer_and_starts_nothing(repo_root: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_peers", "--list"],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    for key, peer in registry.PEERS.items():
        assert f"{key}: {peer.label}" in done.stdout
        assert (repo_root / "benchmarks" / "peers" / f"{peer.module}.py").is_file()
        for settings in peer.variants:
            assert settings in done.stdout


def test_torchserve_batches_name_each_part() -> None:
    """TorchServe keys a request's parts by name: a batch must not repeat one."""
    from multipart import MultipartParser

    body = registry.named_multipart(PNGS)
    parts = list(MultipartParser(io.BytesIO(body), BOUNDARY))
    assert [p.name for p in parts] == ["image0", "image1", "image2"]
    assert [p.raw for p in parts] == PNGS


def test_v2_bodies_carry_the_pngs_with_each_servers_shape() -> None:
    for protocol, shape in (("v2", [3]), ("v2-triton", [3, 1])):
        body, headers = registry.request(protocol, PNGS, single=False)
        length = int(headers["Inference-Header-Content-Length"])
        (tensor,) = json.loads(body[:length])["inputs"]
        assert tensor["shape"] == shape and tensor["datatype"] == "BYTES"
        raw, found = body[length:], []
        while raw:
            n = int.from_bytes(raw[:4], "little")
            found, raw = [*found, raw[4 : 4 + n]], raw[4 + n :]
        assert found == PNGS


def test_kserve_gets_base64_instances() -> None:
    body, headers = registry.request("kserve", PNGS, single=False)
    instances = json.loads(body)["instances"]
    assert headers["Content-Type"] == "application/json"
    assert [base64.b64decode(i["image_bytes"]["b64"]) for i in instances] == PNGS


def test_digits_are_read_from_every_answer_format() -> None:
    probs = np.eye(10, dtype=np.float32)[[3, 1, 4]]  # (3, 10)
    head = json.dumps(
        {"outputs": [{"name": "probabilities", "shape": [3, 10], "datatype": "FP32", "parameters": {}}]}
    ).encode()
    binary = head + probs.tobytes()
    assert registry.digits("v2-triton", binary, {"Inference-Header-Content-Length": str(len(head))}) == [3, 1, 4]
    as_json = json.dumps({"outputs": [{"shape": [3, 10], "data": probs.ravel().tolist()}]}).encode()
    assert registry.digits("v2", as_json, {}) == [3, 1, 4]
    answers = [{"digit": d} for d in (3, 1, 4)]
    assert registry.digits("kserve", json.dumps({"predictions": answers}).encode(), {}) == [3, 1, 4]
    assert registry.digits("multipart", json.dumps(answers).encode(), {}) == [3, 1, 4]
    assert registry.digits("torchserve", json.dumps(answers[0]).encode(), {}) == [3]


def test_the_png_is_cut_out_of_a_project_body() -> None:
    assert bench_peers.png_of(multipart("image", [PNGS[1]])) == PNGS[1]


def results() -> dict:
    def run(rps: float, p99: float) -> dict:
        return {"rps": rps, "p50_ms": p99 / 2, "p99_ms": p99, "failures": 0, "cpu_ms_per_request": 0.5}

    def server(label: str, dist: str, settings: str, rps: float, batch_rps: float) -> dict:
        return {
            "label": label,
            "dist": dist,
            "settings": settings,
            "predict": run(rps, 20),
            "batch": run(batch_rps, 300),
        }

    return {
        "machine": "test box",
        "model": "m",
        "users": 32,
        "rounds": 5,
        "seconds": 10,
        "warmup": 5,
        "batch": 64,
        "cores": 2,
        "versions": {"bentoml": "1.4", "torchserve": "0.12.0"},
        "in_process": 32_000.0,
        "servers": {
            "project": server("this project (BentoML)", "bentoml", "", 3_000.0, 400.0),
            "torchserve": server("TorchServe", "torchserve", "2 workers, batchSize 8", 2_000.0, 100.0),
        },
        "not_run": {"ray": "needs java on PATH"},
        "sweep": {
            "rounds": 1,
            "seconds": 5,
            "peers": {"torchserve": {"2 workers, batchSize 8": {"rps": 2e3, "p99_ms": 20.0, "images_s": 6.4e3}}},
            "best": {"torchserve": "2 workers, batchSize 8"},
        },
    }


def test_report_states_the_targets_from_one_run() -> None:
    text = report.table(json.loads(json.dumps(results())))
    assert "| TorchServe 0.12.0 | 2 workers, batchSize 8 | 2,000 |" in text
    assert "**1.50x** the best peer's requests/s" in text and "**4.00x** the best peer's images/s" in text
    assert "25,600 vs 32,000 images/s = **80%**" in text
    assert "| ray | did not run: needs java on PATH |" in text
    assert "| torchserve | **2 workers, batchSize 8** | 2,000 | 20 | 6,400 |" in text


def test_docs_are_written_into_their_own_section(tmp_path: Path) -> None:
    benchmarks_md = tmp_path / "BENCHMARKS.md"
    benchmarks_md.write_text("# Benchmarks\n\n## Before\n\nabc\n")
    report.write_docs(results(), benchmarks_md)
    report.write_docs(results(), benchmarks_md)  # rewrites, never duplicates
    text = benchmarks_md.read_text()
    assert text.count(report.START) == 1 and text.index("abc") < text.index(report.START)
    assert text.count("## Serving: this project beside") == 1
    assert "| torchserve | **2 workers, batchSize 8** | 2,000 | 20 | 6,400 |" in text
