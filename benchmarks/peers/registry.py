"""The peers bench_peers compares: how each is started, reached and asked, and its settings.

Run by benchmarks/bench_peers.py in the project's venv (never in .venv-peers): the launch files
beside this module are what runs in .venv-peers.
"""

from __future__ import annotations

import base64
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.bench_service import BOUNDARY, multipart, v2_bytes_request

REPO = Path(__file__).resolve().parents[2]
PEERS_PYTHON = REPO / ".venv-peers" / "bin" / "python"


@dataclass(frozen=True)
class Peer:
    """A server users might pick instead: how to start it, reach it and what settings it is swept over."""

    label: str
    dist: str  # the distribution whose version names the row
    module: str  # launch file: python -m benchmarks.peers.<module>
    protocol: str  # request format: multipart | torchserve | kserve (v1, base64 JSON) | v2-triton
    predict: str  # route for one image
    batch: str  # route for 64 images
    ready: str  # 200 once the model is loaded
    variants: dict[str, tuple[str, ...]]  # settings name -> launch flags; the first is the default
    needs: tuple[str, ...] = ()  # programs it needs on PATH


V1, V2 = "/v1/models/mnist:predict", "/v2/models/mnist/infer"
PEERS = {
    "fastapi": Peer(
        "FastAPI + uvicorn (hand-written)", "fastapi", "fastapi_app", "multipart", "/predict", "/predict_batch",
        "/readyz", {"2 workers": ("--workers", "2"), "1 worker": ("--workers", "1")},
    ),
    "torchserve": Peer(
        "TorchServe", "torchserve", "torchserve_app", "torchserve", "/predictions/mnist", "/predictions/mnist",
        "/ping",
        {
            "2 workers, batchSize 8, maxBatchDelay 2 ms": ("--workers", "2", "--batch", "8", "--delay-ms", "2"),
            "2 workers, no batching": ("--workers", "2", "--batch", "1"),
            "2 workers, batchSize 16, maxBatchDelay 5 ms": ("--workers", "2", "--batch", "16", "--delay-ms", "5"),
            "1 worker, batchSize 8, maxBatchDelay 2 ms": ("--workers", "1", "--batch", "8", "--delay-ms", "2"),
        },
        needs=("java",),
    ),
    "kserve": Peer(
        "KServe ModelServer", "kserve", "kserve_app", "kserve", V1, V1, "/v1/models/mnist",
        {"2 workers": ("--workers", "2"), "1 worker": ("--workers", "1")},
    ),
    "pytriton": Peer(
        "Triton via PyTriton", "nvidia-pytriton", "pytriton_app", "v2-triton", V2, V2, "/v2/models/mnist/ready",
        {
            "2 instances, queue delay 2 ms": ("--workers", "2", "--delay-us", "2000"),
            "2 instances, queue delay 0": ("--workers", "2", "--delay-us", "0"),
            "1 instance, queue delay 2 ms": ("--workers", "1", "--delay-us", "2000"),
        },
    ),
    "litserve": Peer(
        "LitServe", "litserve", "litserve_app", "multipart", "/predict", "/predict", "/readyz",
        {
            "2 workers, batch 16 / 2 ms": ("--workers", "2", "--batch", "16", "--delay-ms", "2"),
            "2 workers, no batching": ("--workers", "2", "--batch", "1"),
            "2 workers, batch 16 / 2 ms, fast queue": ("--workers", "2", "--batch", "16", "--fast-queue"),
            "1 worker, batch 16 / 2 ms": ("--workers", "1", "--batch", "16", "--delay-ms", "2"),
        },
    ),
    "ray": Peer(
        "Ray Serve", "ray", "ray_app", "multipart", "/predict", "/predict_batch", "/readyz",
        {
            "2 replicas, @serve.batch 8 / 2 ms": ("--workers", "2", "--batch", "8", "--delay-ms", "2"),
            "2 replicas, @serve.batch 16 / 5 ms": ("--workers", "2", "--batch", "16", "--delay-ms", "5"),
            "1 replica, @serve.batch 8 / 2 ms": ("--workers", "1", "--batch", "8", "--delay-ms", "2"),
            "2 replicas, batch 8 / 2 ms, Ray's worker niceness": ("--workers", "2", "--niceness", "15"),
        },
    ),
}  # fmt: skip
PROJECT = Peer("this project (BentoML)", "bentoml", "", "multipart", "/predict", "/predict_batch", "/readyz", {"": ()})


def named_multipart(blobs: list[bytes], field: str = "image") -> bytes:
    """Multipart with one part per PNG, each under its own name (`image0`, `image1`, ...): TorchServe
    keys a request's parts by name, so repeated names would keep only the last."""
    return b"".join(multipart(f"{field}{i}", [blob])[: -len(f"--{BOUNDARY}--\r\n")] for i, blob in enumerate(blobs)) + (
        f"--{BOUNDARY}--\r\n".encode()
    )


def v2_request(pngs: list[bytes], triton: bool) -> tuple[bytes, int]:
    """bench_service's Open Inference Protocol body (BYTES `image` [N], binary tensors in and out, as
    tritonclient sends image files); [N, 1] for Triton, whose batched inputs carry the batch
    dimension before the declared shape."""
    body, length = v2_bytes_request(pngs)
    if not triton:
        return body, length
    header = json.loads(body[:length])
    header["inputs"][0]["shape"] = [len(pngs), 1]
    head = json.dumps(header).encode()
    return head + body[length:], len(head)


def request(protocol: str, pngs: list[bytes], single: bool) -> tuple[bytes, dict[str, str]]:
    """One request's body and headers in `protocol`: one PNG (`single`) or a batch."""
    ctype = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    if protocol == "multipart":
        return multipart("image" if single else "images", pngs), ctype
    if protocol == "torchserve":
        return (multipart("image", pngs) if single else named_multipart(pngs)), ctype
    if protocol == "kserve":
        instances = [{"image_bytes": {"b64": base64.b64encode(p).decode()}} for p in pngs]
        return json.dumps({"instances": instances}).encode(), {"Content-Type": "application/json"}
    body, length = v2_request(pngs, triton=protocol == "v2-triton")
    return body, {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(length)}


def digits(protocol: str, body: bytes, headers: dict[str, str]) -> list[int]:
    """The digits a server answered: JSON predictions, or v2 `probabilities` (binary or JSON)."""
    if not protocol.startswith("v2"):
        answer = json.loads(body)
        answer = answer["predictions"] if protocol == "kserve" else answer
        return [a["digit"] for a in (answer if isinstance(answer, list) else [answer])]
    length = int(headers.get("Inference-Header-Content-Length", len(body)))
    (out,) = json.loads(body[:length])["outputs"]
    data = np.frombuffer(body[length:], np.float32) if length < len(body) else np.array(out["data"], np.float32)
    return data.reshape(out["shape"]).argmax(axis=1).tolist()


def write_requests(folder: Path, name: str, peer: Peer, pngs: list[bytes], batch: int) -> None:
    """Add this server's request bodies to the locust payloads (meta.json kinds `<name>.predict`, `<name>.batch`)."""
    meta = json.loads((folder / "meta.json").read_text())
    for kind, size, path in (("predict", 1, peer.predict), ("batch", batch, peer.batch)):
        files, headers = [], []
        for j in range(0, len(pngs) - size + 1, size):
            body, head = request(peer.protocol, pngs[j : j + size], single=size == 1)
            (folder / f"{name}.{kind}{j}.bin").write_bytes(body)
            files.append(f"{name}.{kind}{j}.bin")
            headers.append({k: v for k, v in head.items() if k != "Content-Type"})
        meta[f"{name}.{kind}"] = {
            "path": path,
            "files": files,
            "headers": headers,
            "content_type": head["Content-Type"],
        }
    (folder / "meta.json").write_text(json.dumps(meta))


def listing() -> str:
    """--list: each peer, how it is started and reached, its settings, and what it needs."""
    lines = [
        f"peers' interpreter: {PEERS_PYTHON} ({'present' if PEERS_PYTHON.exists() else 'missing: make bench-peers'})"
    ]
    for key, peer in PEERS.items():
        needs = ", ".join(f"{n} ({'found' if shutil.which(n) else 'MISSING'})" for n in peer.needs)
        lines.append(f"\n{key}: {peer.label} [{peer.dist}]{'  needs ' + needs if needs else ''}")
        lines.append(f"  python -m benchmarks.peers.{peer.module} --port P --model M.onnx ...")
        lines.append(
            f"  {peer.protocol}: one image POST {peer.predict}, 64 images POST {peer.batch}, ready GET {peer.ready}"
        )
        for i, (settings, flags) in enumerate(peer.variants.items()):
            lines.append(f"  {'*' if i == 0 else ' '} {settings}: {' '.join(flags)}")
    lines.append("\n(* the default; `--sweep` measures every setting and the comparison takes each peer's best)")
    return "\n".join(lines)
