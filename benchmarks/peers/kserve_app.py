"""KServe's Python model server (`kserve.ModelServer`), its v1 REST protocol with base64 images.

    python -m benchmarks.peers.kserve_app --port 8000 --model M.onnx --workers 2

POST /v1/models/mnist:predict `{"instances": [{"image_bytes": {"b64": PNG}}, ...]}` ->
`{"predictions": [{digit, confidence, probabilities}, ...]}`: KServe's documented way to send image
files (its v2 REST path turns binary BYTES tensors into UTF-8 strings, which a PNG is not). Ready
at /v1/models/mnist. With `--workers` > 1 KServe spawns uvicorn processes and kills one that does
not answer a ping within 5 s, which a fresh process importing kserve on a busy machine misses: the
wait is raised here.
"""

import base64
import os
import sys

ARGV, sys.argv = sys.argv, sys.argv[:1]  # kserve parses sys.argv when imported; ours are parsed in main()
os.environ.setdefault("KSERVE_LOGLEVEL", "WARNING")  # no log line per request (read on import)

import uvicorn  # noqa: E402
from kserve import Model, ModelServer  # noqa: E402
from kserve.protocol.rest.multiprocess import server as multiprocess  # noqa: E402

from benchmarks.peers import common  # noqa: E402
from benchmarks.peers.common import answers, arguments, stack  # noqa: E402

START_PING_S = 60.0  # KServe's own: 5 s, and importing kserve alone takes 7-10 s on a loaded 2-core machine


def _patient_is_alive(self: multiprocess.RESTServerProcess, timeout: float = 5) -> bool:
    return _is_alive(self, timeout=max(timeout, START_PING_S))


_is_alive = multiprocess.RESTServerProcess.is_alive
multiprocess.RESTServerProcess.is_alive = _patient_is_alive


class LoopbackConfig(uvicorn.Config):
    """KServe binds 0.0.0.0 with uvicorn's access log; this benchmark listens on 127.0.0.1 only, and
    every server in it runs without a log line per request."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **{**kwargs, "host": "127.0.0.1", "access_log": False})


uvicorn.Config = LoopbackConfig  # what kserve.protocol.rest.server builds its server from


class Mnist(Model):
    """The session is made per process, on first use: KServe pickles the model into each worker."""

    def __init__(self, name: str, model_path: str) -> None:
        super().__init__(name)
        self.model_path = model_path
        self._model: common.Model | None = None
        self.ready = True

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_model": None}

    def predict(self, payload: dict, headers: dict | None = None) -> dict:
        if self._model is None:
            self._model = common.Model(self.model_path)
        pngs = [base64.b64decode(x["image_bytes"]["b64"]) for x in payload["instances"]]
        return {"predictions": answers(self._model.probabilities(stack(pngs)))}


def main() -> None:
    args = arguments(__doc__.splitlines()[0]).parse_args(ARGV[1:])
    ModelServer(
        http_port=args.port,
        workers=args.workers,
        enable_grpc=False,
        enable_docs_url=False,
        enable_latency_logging=False,
    ).start([Mnist("mnist", args.model)])


if __name__ == "__main__":
    main()
