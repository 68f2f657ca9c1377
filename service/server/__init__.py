"""The server's plumbing: connections (uvicorn), supervisor (circus), memory, traffic (503 and
504), security (API keys, headers), metrics (Prometheus), and internals: the one fence around
those libraries' internals."""
