"""What one /read_number costs against one /predict of the same photo, through a real server.

    flock /tmp/timing.lock python -m benchmarks.bench_read_number            # about a minute
    flock /tmp/timing.lock python -m benchmarks.bench_read_number --digits 4 --runs 200

Serves the repo with `bentoml serve` and one worker, renders photos of spaced numbers of
--digits test digits (harness.numbers, seed 0), and sends each photo to /read_number and to
/predict, one request at a time, alternating, so that both see the same machine. Prints the
median and p90 wall time of each and their ratio, and how many numbers were read exactly.
Numbers print only.
"""

from __future__ import annotations

import argparse
import statistics
import time

import httpx

from harness.mnist import load_mnist
from harness.numbers import sample_numbers
from harness.server import running_service


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--digits", type=int, default=4, help="digits per number (default: 4)")
    parser.add_argument("--photos", type=int, default=20, help="different photos (default: 20)")
    parser.add_argument("--runs", type=int, default=100, help="requests to each endpoint (default: 100)")
    args = parser.parse_args()

    images, labels = load_mnist(split="test")
    uploads = list(sample_numbers(images, labels, ("spaced",), args.photos, lengths=(args.digits, args.digits), seed=0))
    times: dict[str, list[float]] = {"/read_number": [], "/predict": []}
    read_right = 0
    with running_service({"MNIST_WORKERS": "1"}) as url, httpx.Client(base_url=url, timeout=30) as client:
        for up in uploads:  # warm-up, and how many are read right
            headers = {"content-type": up.content_type}
            read_right += client.post("/read_number", content=up.data, headers=headers).json()["number"] == up.label
            client.post("/predict", content=up.data, headers=headers).raise_for_status()
        for i in range(args.runs):
            up = uploads[i % len(uploads)]
            headers = {"content-type": up.content_type}
            for path in ("/read_number", "/predict") if i % 2 else ("/predict", "/read_number"):
                start = time.perf_counter()
                client.post(path, content=up.data, headers=headers).raise_for_status()
                times[path].append(1000 * (time.perf_counter() - start))

    def p90(v: list[float]) -> float:
        return statistics.quantiles(v, n=10)[-1]

    size = sum(len(u.data) for u in uploads) // len(uploads)
    print(f"{len(uploads)} photos of {args.digits} spaced test digits (JPEG, {size:,} bytes on average), one worker")
    for path, v in times.items():
        print(f"{path:13s} median {statistics.median(v):6.1f} ms  p90 {p90(v):6.1f} ms  ({len(v)} requests)")
    ratio = statistics.median(times["/read_number"]) / statistics.median(times["/predict"])
    print(f"/read_number / /predict (medians): {ratio:.2f}x")
    print(f"numbers read exactly: {read_right}/{len(uploads)}")


if __name__ == "__main__":
    main()
