"""Triton Inference Server through PyTriton: Python inference callables behind Triton's HTTP front.

    python -m benchmarks.peers.pytriton_app --port 8000 --model M.onnx --workers 2 --delay-us 2000

POST /v2/models/mnist/infer with BYTES `image` [N, 1] (PNG files; binary tensor extension) ->
FP32 `probabilities` [N, 10]; Triton's dynamic batcher coalesces requests for up to `--delay-us`
(0: only those already queued); `--workers` model instances, one session each (PyTriton runs their
callables as threads of this process). HTTP only, on 127.0.0.1.
"""

from __future__ import annotations

import os
import sysconfig
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks.peers.common import Model, arguments, stack

MAX_BATCH = 256  # >= the 64-image requests, and room for the batcher to coalesce several


def infer_function(model_path: str) -> Callable:
    """One instance: its own session; `@batch` hands it the coalesced requests as one array."""
    from pytriton.decorators import batch

    model = Model(model_path)

    @batch
    def infer(image: np.ndarray) -> dict[str, np.ndarray]:  # (N, 1) object: PNG bytes
        return {"probabilities": model.probabilities(stack(list(image[:, 0])))}

    return infer


def main() -> None:
    parser = arguments(__doc__.splitlines()[0])
    parser.add_argument("--delay-us", type=int, default=2000, help="dynamic batcher's max_queue_delay_microseconds")
    args = parser.parse_args()
    # Triton's Python backend stub links against libpython: outside conda it needs to find ours.
    libdir = sysconfig.get_config_var("LIBDIR")
    os.environ["LD_LIBRARY_PATH"] = ":".join(filter(None, [libdir, os.environ.get("LD_LIBRARY_PATH")]))

    from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
    from pytriton.triton import Triton, TritonConfig

    config = TritonConfig(
        http_address="127.0.0.1",
        http_port=args.port,
        allow_grpc=False,
        allow_metrics=False,
        log_verbose=0,
    )
    # Its model store and sockets in this run's temp folder (bench_peers gives each peer a TMPDIR).
    with Triton(config=config, workspace=Path(tempfile.gettempdir()) / "pytriton") as triton:
        triton.bind(
            model_name="mnist",
            infer_func=[infer_function(args.model) for _ in range(args.workers)],
            inputs=[Tensor(name="image", dtype=np.bytes_, shape=(1,))],
            outputs=[Tensor(name="probabilities", dtype=np.float32, shape=(10,))],
            config=ModelConfig(
                max_batch_size=MAX_BATCH, batcher=DynamicBatcher(max_queue_delay_microseconds=args.delay_us)
            ),
            strict=False,
        )
        triton.serve()


if __name__ == "__main__":
    main()
