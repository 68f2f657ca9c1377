"""What tests, load tests and benchmarks share: a server runner, realistic uploads, answer checks
and an MNIST reader. numpy and Pillow only (plus onnx for tiny_model), never torch, so that every
room imports it the same way: `from harness.uploads import render`.
"""
