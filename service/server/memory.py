"""A worker's memory: keep the garbage collector out of latency, and RSS from creeping."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import os
import sys

logger = logging.getLogger("service")

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number
MMAP_THRESHOLD = 1 << 20  # 1 MiB: decoded photos above it, a batch's arrays below


def tune_gc() -> None:
    """Keep the garbage collector out of request latency.

    A worker holds ~10^5 long-lived objects (BentoML, pydantic, OpenTelemetry...); each full
    collection walks them all (~40 ms here, more under load) and stalled every request in
    flight (the --ablation table in BENCHMARKS.md). Freeze what start-up made, and collect
    young objects less often.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 10, 10)


def tune_malloc(threshold: int = MMAP_THRESHOLD) -> bool:
    """Hand big buffers (a decoded photo is megabytes) back to the OS as soon as they are freed.

    glibc raises its mmap threshold each time a big block is freed, up to 32 MiB; after that
    photos are decoded into the heap, which fragments and keeps them: under `make soak` the
    workers' RSS crept up for five minutes. A fixed threshold, as MALLOC_MMAP_THRESHOLD_
    would set, stops the creep (README, soak). An operator's own MALLOC_MMAP_THRESHOLD_
    wins. True when set; False off glibc (musl, macOS) or when the operator chose.
    """
    if not sys.platform.startswith("linux") or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        done = libc.mallopt(M_MMAP_THRESHOLD, threshold) == 1
    except (OSError, AttributeError):  # no libc by that name, or no mallopt in it
        return False
    if not done:
        logger.info("mallopt(M_MMAP_THRESHOLD) not supported by this C library; left as is")
    return bool(done)
