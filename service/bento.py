"""Build the serving bento from the one place each part is written down.

bentofile.yaml holds what does not change (the service, its name, the code and the docker
options); the contract says which models a bento packs (served.json's versions, read at build
time, so a promotion or rollback needs no hand step); pyproject.toml's `serve` extra (or `gpu`)
is the one list of packages. `python -m service.bento` (`make bento`) builds with all three;
`--print` shows the options without building.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

import yaml

from contract import bento_includes, read_served

REPO = Path(__file__).resolve().parents[1]
PROJECT = "mnist-serving"


def extra_requirements(pyproject: Path, extra: str) -> list[str]:
    """The packages an extra installs, with the extras it builds on (`mnist-serving[x]`) expanded."""
    extras: dict[str, list[str]] = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]
    if extra not in extras:
        raise KeyError(f"{pyproject} has no extra {extra!r} (has {sorted(extras)})")
    packages: list[str] = []
    for req in extras[extra]:
        nested = re.fullmatch(rf"{re.escape(PROJECT)}\[([\w,-]+)\]", req.strip())
        if nested is None:
            packages.append(req)
            continue
        for name in nested.group(1).split(","):
            packages += [p for p in extra_requirements(pyproject, name) if p not in packages]
    return packages


def build_options(repo: Path, extra: str = "serve") -> dict[str, Any]:
    """bentofile.yaml's options, with the contract's includes and the extra's packages."""
    options: dict[str, Any] = yaml.safe_load((repo / "bentofile.yaml").read_text())
    models_dir = repo / "models"
    options["include"] = list(dict.fromkeys([*options.get("include", []), *bento_includes(models_dir, repo)]))
    options["python"] = {**options.get("python", {}), "packages": extra_requirements(repo / "pyproject.toml", extra)}
    options["labels"] = {**options.get("labels", {}), "model_version": read_served(models_dir).served or "none"}
    return options


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--extra", default="serve", choices=["serve", "gpu"], help="which install the bento gets")
    parser.add_argument("--print", action="store_true", help="print the build options as JSON; build nothing")
    parser.add_argument("--repo", type=Path, default=REPO, help="project root")
    args = parser.parse_args(argv)
    options = build_options(args.repo, args.extra)
    if args.print:
        print(json.dumps(options, indent=2))
        return 0
    import bentoml

    bento = bentoml.bentos.build(**options, build_ctx=str(args.repo))
    print(
        f"built {bento.tag} (model {options['labels']['model_version']}); "
        f"next: bentoml serve {bento.tag} or make container"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
