"""LitServe: one LitAPI on /predict that takes one `image` or many `images` (multipart) and answers
one prediction or a list (one API, not two: each LitAPI gets inference processes of its own).

    python -m benchmarks.peers.litserve_app --port 8000 --model M.onnx --workers 2 --batch 16 --delay-ms 2

LitServe runs `--workers` inference processes behind as many uvicorn API processes; `--batch` > 1
turns on its server-side batching (requests collected for up to `--delay-ms`).
"""

import litserve as ls
import numpy as np
from fastapi import Request

from benchmarks.peers.common import READY, Model, answers, arguments, stack


class MnistAPI(ls.LitAPI):
    """Module level: LitServe pickles it into each spawned inference process."""

    def __init__(self, model_path: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.model_path = model_path

    def setup(self, device: str) -> None:
        self.model = Model(self.model_path)

    def decode_request(self, request: Request) -> np.ndarray:
        """LitServe parses the form for us, seeing this annotation (no `from __future__ import
        annotations` here: as a string it would hand over the unpicklable request instead)."""
        files = request.getlist("images") or [request["image"]]
        return stack([f.file.read() for f in files])  # (n, 1, 28, 28)

    def batch(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        return inputs  # requests of different sizes: concatenated in predict

    def predict(self, x: np.ndarray | list[np.ndarray]) -> list:
        """One (n, 1, 28, 28) array, or a list of them when batching."""
        if isinstance(x, np.ndarray):
            return answers(self.model.probabilities(x))
        sizes = np.cumsum([len(a) for a in x])[:-1]
        probs = self.model.probabilities(np.concatenate(x))
        return [answers(p) for p in np.split(probs, sizes)]

    def unbatch(self, output: list) -> list:
        return output

    def encode_response(self, output: list[dict]) -> list[dict] | dict:
        return output if len(output) > 1 else output[0]


def main() -> None:
    parser = arguments(__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1, help="max_batch_size (1: no batching)")
    parser.add_argument("--delay-ms", type=float, default=2.0, help="batch_timeout")
    parser.add_argument("--fast-queue", action="store_true", help="LitServe's ZeroMQ queue")
    args = parser.parse_args()
    server = ls.LitServer(
        MnistAPI(args.model, max_batch_size=args.batch, batch_timeout=args.delay_ms / 1000, api_path="/predict"),
        accelerator="cpu",
        devices=1,
        workers_per_device=args.workers,
        healthcheck_path=READY,
        fast_queue=args.fast_queue,
    )
    server.run(host="127.0.0.1", port=args.port, log_level="warning", generate_client_file=False)


if __name__ == "__main__":
    main()
