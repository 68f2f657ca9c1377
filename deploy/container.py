"""Build the serving image, tagged with the model version it serves, with podman or docker.

`python -m deploy.container build` (`make container`) is `bentoml build` then `bentoml
containerize` on that bento, in BentoML's stores ($BENTOML_HOME, so `bentoml list` shows the
bento), with what this project's hosts need passed as options. With podman, the base image is
made here when no registry is reachable (`--base debootstrap`: Debian bookworm minbase with
python3 and pip, imported into podman's store under a tag that hashes its recipe, so it is made
once per machine); with docker, bentofile.yaml's base_image is pulled as usual.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from contract import read_served

REPO = Path(__file__).resolve().parents[1]
CONTAINERS_CONF = REPO / "deploy" / "container" / "containers.conf"
IMAGE = "mnist"

# The base image's recipe; its hash names the image, so editing it makes a new one.
SUITE, MIRROR = "bookworm", "http://deb.debian.org/debian"
BASE_PACKAGES = ("python3", "python3-pip")  # Debian's Python is 3.11, as bentofile asks
BASE_TRIM = (
    "var/cache/apt/*",
    "var/lib/apt/lists/*",
    "usr/share/doc/*",
    "usr/share/man/*",
    "usr/share/info/*",
    "usr/share/locale/*",
)

log = logging.getLogger("deploy.container")


def container_env() -> dict[str, str]:
    """The environment for podman/buildah: this repo's containers.conf unless one is set."""
    return {"CONTAINERS_CONF": str(CONTAINERS_CONF), **os.environ}


def served_version(models_dir: Path = REPO / "models") -> str:
    """The model version served.json names: the image is tagged with it."""
    served = read_served(models_dir).served
    if served is None:
        raise SystemExit(f"{models_dir}/served.json serves no model: promote one first (mnist promote)")
    return served


def image_tag(version: str, name: str = IMAGE) -> str:
    """`mnist:<model version>`, e.g. mnist:mnist-cnn-0114bd85."""
    return f"{name}:{version}"


def base_tag() -> str:
    """The local base image's name: its recipe's hash, so a changed recipe is rebuilt."""
    recipe = json.dumps([SUITE, MIRROR, BASE_PACKAGES, BASE_TRIM]).encode()
    return f"localhost/mnist-base:{SUITE}-{hashlib.sha256(recipe).hexdigest()[:12]}"


def podman(*args: str, check: bool = True, capture: bool = False) -> subprocess.CompletedProcess[str]:
    """Run podman with this repo's containers.conf."""
    return subprocess.run(["podman", *args], env=container_env(), check=check, text=True, capture_output=capture)


def ensure_base() -> str:
    """Make the Debian base image with debootstrap unless podman's store has it; its tag."""
    tag = base_tag()
    if podman("image", "exists", tag, check=False).returncode == 0:
        log.info("base image %s is cached", tag)
        return tag
    if shutil.which("debootstrap") is None:
        raise SystemExit("debootstrap is needed to make the base image (apt-get install debootstrap)")
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mnist-base-") as tmp:
        root = Path(tmp) / "root"
        log.info("debootstrap %s into %s (about a minute)", SUITE, root)
        subprocess.run(
            ["debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}", SUITE, str(root), MIRROR],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        subprocess.run(["sh", "-c", "rm -rf " + " ".join(BASE_TRIM)], cwd=root, check=True)
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(
            ["podman", "import", "--quiet", "--change", 'CMD ["/bin/bash"]', "-", tag],
            stdin=tar.stdout,
            env=container_env(),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        if tar.wait() != 0:
            raise SystemExit("tar of the debootstrap tree failed")
    log.info("base image %s made in %.0f s", tag, time.monotonic() - start)
    return tag


def host_ca_bundle() -> Path | None:
    """The CA bundle this host trusts (it may intercept TLS): the build's pip and uv trust it too."""
    for candidate in (
        os.environ.get("SSL_CERT_FILE"),
        ssl.get_default_verify_paths().cafile,
        "/etc/ssl/certs/ca-certificates.crt",
    ):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def bentoml_env(home: Path | None) -> dict[str, str]:
    """The environment for bentoml and podman: BentoML's home `home` (None: the user's)."""
    env = {**container_env(), "BENTOML_DO_NOT_TRACK": "true"}
    return {**env, "BENTOML_HOME": str(home)} if home is not None else env


def build_bento(home: Path | None = None) -> str:
    """`bentoml build` from the repo root (the service declares its models; bentofile.yaml the
    rest) into BentoML's home `home` (None: the user's); the new bento's tag."""
    done = subprocess.run(
        [sys.executable, "-m", "bentoml", "build", "--output", "tag"],
        cwd=REPO,
        env=bentoml_env(home),
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip().splitlines()[-1].removeprefix("__tag__:")


def containerize_command(bento: str, tag: str, backend: str, base: str | None, ca: Path | None) -> list[str]:
    """The `bentoml containerize` command line for bento `bento`, image `tag`."""
    cmd = [
        sys.executable,
        "-m",
        "bentoml",
        "containerize",
        bento,
        "--backend",
        backend,
        "-t",
        tag,
        "--opt",
        f"label=org.opencontainers.image.version={tag.split(':', 1)[1]}",
    ]
    if base is not None:
        cmd += ["--opt", f"build-arg=BASE_IMAGE={base}"]
    if ca is not None and backend == "podman":  # docker build has no volumes
        cmd += ["--opt", f"volume={ca}:/run/host-ca.crt:ro"]
        for arg in ("SSL_CERT_FILE=/run/host-ca.crt", "PIP_CERT=/run/host-ca.crt", "UV_NATIVE_TLS=1"):
            cmd += ["--opt", f"build-arg={arg}"]
    return cmd


def build(
    tag: str, backend: str = "podman", base: str = "debootstrap", home: Path | None = None, no_cache: bool = False
) -> str:
    """Bento, then image `tag` (base: 'debootstrap' or 'bentofile'; home: BentoML's, None for the
    user's; no_cache: no layer cache); returns the tag."""
    base_image = ensure_base() if base == "debootstrap" else None
    bento = build_bento(home)
    cmd = containerize_command(bento, tag, backend, base_image, host_ca_bundle())
    if no_cache:
        cmd += ["--opt", "no-cache"]
    log.info("%s", " ".join(cmd))
    # From the temp folder: BentoML 1.4 copies the bento there and refuses to read its
    # dockerfile_template from outside the working directory.
    subprocess.run(cmd, cwd=tempfile.gettempdir(), env=bentoml_env(home), check=True)
    return tag


def image_bytes(tag: str, backend: str = "podman") -> int:
    """The image's size as the engine reports it (uncompressed layers)."""
    out = subprocess.run(
        [backend, "image", "inspect", "--format", "{{.Size}}", tag],
        env=container_env(),
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return int(out.strip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build the image (default tag: mnist:<served version>)")
    b.add_argument("--backend", choices=("podman", "docker"), default="podman", help="default: %(default)s")
    b.add_argument(
        "--base",
        choices=("debootstrap", "bentofile"),
        default=None,
        help="debootstrap: a Debian base made here (podman's default); "
        "bentofile: bentofile.yaml's base_image, pulled (docker's default)",
    )
    b.add_argument("--tag", default=None, help="image tag (default: mnist:<served version>)")
    sub.add_parser("base", help="only make (or find) the local Debian base image; print its tag")
    sub.add_parser("tag", help="print the tag the image gets: mnist:<served version>")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.command == "tag":
        print(image_tag(served_version()))
        return 0
    if args.command == "base":
        print(ensure_base())
        return 0
    base = args.base or ("debootstrap" if args.backend == "podman" else "bentofile")
    tag = args.tag or image_tag(served_version())
    start = time.monotonic()
    build(tag, args.backend, base)
    size = image_bytes(tag, args.backend)
    print(f"built {tag} ({size / 1e6:.0f} MB) with {args.backend} in {time.monotonic() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
