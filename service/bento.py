"""Keep bentofile.yaml packing exactly the served model, then build the bento.

bentofile.yaml names the served version's folder (a bento must carry only that model, and
YAML cannot read served.json). `python -m service.bento` rewrites that one line from
served.json and runs `bentoml build`; `--no-build` only rewrites it; `--check` only says
whether it is stale.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MARKER = "# the served version (python -m service.bento keeps it in sync)"
LINE = re.compile(r'^(\s*- )"models/[^"/]+/\*\*"(\s*' + re.escape(MARKER) + r")$", re.M)


def served_version(models_dir: Path) -> str:
    """The version served.json names."""
    return json.loads((models_dir / "served.json").read_text())["served"]


def packed_version(bentofile: Path) -> str:
    """The model folder bentofile.yaml includes."""
    match = re.search(r'"models/([^"/]+)/\*\*"\s*' + re.escape(MARKER), bentofile.read_text())
    if match is None:
        raise ValueError(f"{bentofile} has no model line ending in {MARKER!r}")
    return match.group(1)


def sync(bentofile: Path, version: str) -> bool:
    """Point bentofile.yaml's model line at `version`; True if the file changed."""
    text = bentofile.read_text()
    new = LINE.sub(lambda m: f'{m.group(1)}"models/{version}/**"{m.group(2)}', text)
    if new == text:
        return False
    bentofile.write_text(new)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check, build nothing")
    parser.add_argument("--no-build", action="store_true", help="sync bentofile.yaml only")
    parser.add_argument("--repo", type=Path, default=REPO, help="project root (default: %(default)s)")
    args = parser.parse_args(argv)
    bentofile, version = args.repo / "bentofile.yaml", served_version(args.repo / "models")
    if args.check:
        packed = packed_version(bentofile)
        if packed != version:
            print(f"bentofile.yaml packs {packed}, served.json serves {version}: "
                  "run `make bento`", file=sys.stderr)
            return 1
        print(f"bentofile.yaml packs the served model {version}")
        return 0
    if sync(bentofile, version):
        print(f"bentofile.yaml now packs {version}")
    if args.no_build:
        return 0
    cmd = [sys.executable, "-m", "bentoml", "build", str(args.repo)]
    return subprocess.call(cmd, cwd=args.repo)


if __name__ == "__main__":
    sys.exit(main())
