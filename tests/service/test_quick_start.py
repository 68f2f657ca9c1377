"""README's quick start works exactly as written: the sample uploads in samples/ read as their digits."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.service

SAMPLES = {"digit-7.png": ("image/png", 7), "photo-3.jpg": ("image/jpeg", 3), "canvas-2.png": ("image/png", 2)}


@pytest.mark.parametrize("name", list(SAMPLES))
def test_sample_reads_as_its_digit(service_url: str, repo_root: Path, name: str) -> None:
    content_type, digit = SAMPLES[name]
    data = (repo_root / "samples" / name).read_bytes()
    multipart = httpx.post(f"{service_url}/predict", files={"image": (name, data, content_type)}, timeout=60)
    raw = httpx.post(f"{service_url}/predict", content=data, headers={"Content-Type": content_type}, timeout=60)
    for resp in (multipart, raw):
        assert resp.status_code == 200, resp.text
        assert resp.json()["digit"] == digit
