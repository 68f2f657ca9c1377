"""A hand-written FastAPI + uvicorn endpoint: what a user would write instead of a serving framework.

    python -m benchmarks.peers.fastapi_app --port 8000 --model models/<version>/model.onnx --workers 2

POST /predict (multipart `image`) and /predict_batch (repeated multipart `images`), GET /readyz.
uvicorn runs `--workers` processes (httptools, uvloop, no access log), one session each.
"""

import os

from fastapi import FastAPI, UploadFile  # no `from __future__ import annotations`: FastAPI reads these

from benchmarks.peers.common import READY, Model, answers, arguments, stack


def app() -> FastAPI:
    """A uvicorn factory: one app, and so one session, per worker process."""
    model = Model(os.environ["PEER_MODEL"])
    api = FastAPI()

    @api.post("/predict")
    async def predict(image: UploadFile) -> dict:
        return answers(model.probabilities(stack([await image.read()])))[0]

    @api.post("/predict_batch")
    async def predict_batch(images: list[UploadFile]) -> list[dict]:
        return answers(model.probabilities(stack([await f.read() for f in images])))

    @api.get(READY)
    async def ready() -> dict:
        return {}

    return api


def main() -> None:
    import uvicorn

    args = arguments(__doc__.splitlines()[0]).parse_args()
    os.environ["PEER_MODEL"] = args.model
    uvicorn.run(
        "benchmarks.peers.fastapi_app:app",
        factory=True,
        host="127.0.0.1",
        port=args.port,
        workers=args.workers,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
