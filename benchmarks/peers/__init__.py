"""The servers users would pick instead of this project, each serving the same ONNX model.

Launch files, run by benchmarks/bench_peers.py in .venv-peers as `python -m
benchmarks.peers.<name>_app --port P --model M.onnx [settings]` (`common` is the model code they
share: a 28x28 PNG decoded with Pillow, scaled to float32 in [0, 1], onnxruntime with one intra-op
thread, digit, confidence and probabilities answered; `torchserve_handler` is TorchServe's
handler). The runner's own parts, run in the project's venv: `registry` (each peer: how it is
started, reached and asked, its settings), `servers` (started, checked, paused, stopped) and
`report` (the markdown and the chart).
"""
