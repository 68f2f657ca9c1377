"""Side-by-side measurements; run from the repo root as `python -m benchmarks.<name>`."""
