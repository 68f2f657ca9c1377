"""TorchServe: its Java frontend and Python workers, the ONNX model in a no-archive model folder.

    python -m benchmarks.peers.torchserve_app --port 8000 --model M.onnx --workers 2 --batch 8 --delay-ms 2

POST /predictions/mnist, multipart: one part per image (a field name each; TorchServe keys parts by
name); ready at /ping. `--batch` > 1 lets TorchServe batch requests (batchSize, maxBatchDelay). Its
model store, logs and config live in this process's TMPDIR: a second TorchServe on the host needs
its own. Needs java on PATH.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.peers.common import arguments
from harness.server import free_port

HANDLER = Path(__file__).with_name("torchserve_handler.py")
REPO = Path(__file__).resolve().parents[2]
# Warnings only: no access log, metrics or model log line per request (no server here logs each).
LOG4J = """<?xml version="1.0" encoding="UTF-8"?>
<Configuration>
  <Appenders>
    <Console name="STDOUT" target="SYSTEM_OUT"><PatternLayout pattern="%d{ISO8601} [%-5p] %t %c - %m%n"/></Console>
  </Appenders>
  <Loggers>
    <Logger name="ACCESS_LOG" level="off"/>
    <Logger name="TS_METRICS" level="off"/>
    <Logger name="MODEL_METRICS" level="off"/>
    <Logger name="MODEL_LOG" level="warn"/>
    <Root level="warn"><AppenderRef ref="STDOUT"/></Root>
  </Loggers>
</Configuration>
"""


def main() -> None:
    parser = arguments(__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1, help="batchSize (1: no batching)")
    parser.add_argument("--delay-ms", type=int, default=2, help="maxBatchDelay")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="torchserve-"))
    bin_dir = Path(sys.executable).parent
    store = home / "store"
    store.mkdir()
    subprocess.run(
        [
            str(bin_dir / "torch-model-archiver"),
            "--model-name=mnist",
            "--version=1.0",
            f"--handler={HANDLER}",
            f"--extra-files={args.model}",
            f"--export-path={store}",
            "--archive-format=no-archive",
        ],
        check=True,
    )
    model = {
        "defaultVersion": True,
        "marName": "mnist",
        "minWorkers": args.workers,
        "maxWorkers": args.workers,
        "batchSize": args.batch,
        "maxBatchDelay": args.delay_ms,
        "responseTimeout": 120,
    }
    config = home / "config.properties"
    config.write_text(
        "\n".join(
            [
                f"inference_address=http://127.0.0.1:{args.port}",
                f"management_address=http://127.0.0.1:{free_port()}",
                f"metrics_address=http://127.0.0.1:{free_port()}",
                # TorchServe always serves gRPC too, on 7070 and 7071 unless told: a second one would clash.
                "grpc_inference_address=127.0.0.1",
                f"grpc_inference_port={free_port()}",
                "grpc_management_address=127.0.0.1",
                f"grpc_management_port={free_port()}",
                f"model_store={store}",
                "load_models=mnist",
                f"models={json.dumps({'mnist': {'1.0': model}})}",
                f"default_workers_per_model={args.workers}",
                "disable_token_authorization=true",
                "install_py_dep_per_model=false",
                "async_logging=true",
                "disable_system_metrics=true",
                "",
            ]
        )
    )
    (home / "log4j2.xml").write_text(LOG4J)
    env = {
        **os.environ,
        "TMPDIR": str(home),
        "TEMP": str(home),  # the frontend's java.io.tmpdir: its worker sockets, /tmp/.ts.sock.<port> by default
        "LOG_LOCATION": str(home / "logs"),
        "METRICS_LOCATION": str(home / "logs"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),  # the handler's imports
    }
    cmd = [
        str(bin_dir / "torchserve"),
        "--start",
        "--foreground",
        "--ncs",
        f"--ts-config={config}",
        f"--model-store={store}",
        f"--log-config={home / 'log4j2.xml'}",
    ]
    os.chdir(home)
    os.execve(cmd[0], cmd, env)  # the launcher becomes torchserve: stopping this process group stops it


if __name__ == "__main__":
    main()
