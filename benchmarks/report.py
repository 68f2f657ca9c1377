"""Each benchmark owns one marked section of BENCHMARKS.md and rewrites only that section."""

from __future__ import annotations

from pathlib import Path

HEADER = "# Benchmarks\n\nEvery number here comes from the command named beside it.\n"


def write_section(path: Path, start: str, end: str, body: str) -> None:
    """Put `body` between the `start` and `end` markers in `path` (appended when they are absent);
    the other benchmarks' sections are left as they are."""
    block = f"{start}\n{body.strip()}\n{end}"
    text = path.read_text() if path.exists() else HEADER
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)
