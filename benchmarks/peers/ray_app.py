"""Ray Serve: a FastAPI ingress deployment, `@serve.batch` on the model call.

    python -m benchmarks.peers.ray_app --port 8000 --model M.onnx --workers 2 --batch 8 --delay-ms 2

Starts its own local Ray (`address="local"`: never joins a Ray already running on the host) with
one CPU per core, in its own temp folder; `--workers` replicas, each one session; requests coalesce
into batches of up to `--batch` (`--max-ongoing` must be at least that, Serve's default 5 caps it).
"""

import os
import tempfile

import numpy as np
import ray
from fastapi import FastAPI, UploadFile  # no `from __future__ import annotations`: FastAPI reads these
from ray import serve

from benchmarks.peers.common import READY, Model, answers, arguments, stack

api = FastAPI()


@serve.ingress(api)
class Mnist:
    def __init__(self, model_path: str, batch: int, delay_ms: float) -> None:
        self.model = Model(model_path)
        self.infer.set_max_batch_size(batch)
        self.infer.set_batch_wait_timeout_s(delay_ms / 1000)

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.002)
    async def infer(self, xs: list[np.ndarray]) -> list[np.ndarray]:
        """Requests of 1 or many images each, in one onnxruntime call."""
        sizes = np.cumsum([len(x) for x in xs])[:-1]
        return np.split(self.model.probabilities(np.concatenate(xs)), sizes)

    @api.post("/predict")
    async def predict(self, image: UploadFile) -> dict:
        return answers(await self.infer(stack([await image.read()])))[0]

    @api.post("/predict_batch")
    async def predict_batch(self, images: list[UploadFile]) -> list[dict]:
        return answers(await self.infer(stack([await f.read() for f in images])))

    @api.get(READY)
    async def ready(self) -> dict:
        return {}


def main() -> None:
    parser = arguments(__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8, help="@serve.batch max_batch_size")
    parser.add_argument("--delay-ms", type=float, default=2.0, help="@serve.batch batch_wait_timeout_s")
    parser.add_argument("--max-ongoing", type=int, default=64, help="max_ongoing_requests per replica")
    parser.add_argument(
        "--niceness", type=int, default=0, help="of Ray's workers (Ray's default 15 yields to the client)"
    )
    args = parser.parse_args()
    os.environ["RAY_worker_niceness"] = str(args.niceness)  # noqa: SIM112 (Ray's spelling); read by its raylet
    ray.init(
        address="local",
        num_cpus=os.cpu_count(),
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        _temp_dir=tempfile.mkdtemp(prefix="ray-"),
        log_to_driver=False,
    )
    serve.start(http_options={"host": "127.0.0.1", "port": args.port}, logging_config={"log_level": "WARNING"})
    deployment = serve.deployment(
        Mnist, num_replicas=args.workers, max_ongoing_requests=args.max_ongoing, ray_actor_options={"num_cpus": 0}
    )
    serve.run(
        deployment.bind(args.model, args.batch, args.delay_ms),
        name="mnist",
        route_prefix="/",
        blocking=True,
        logging_config={"log_level": "WARNING", "enable_access_log": False},
    )


if __name__ == "__main__":
    main()
