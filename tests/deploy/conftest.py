"""What the deploy tests need from the machine: kubectl, promtool, prometheus, podman.

`.ci/run` installs them; elsewhere a test whose tool is missing is skipped with the
command that installs it, except under CI, where a missing tool is a failure.
"""

from __future__ import annotations

import os
import shutil

import pytest

INSTALL = {
    "kubectl": "install kubectl (it renders kustomize offline)",
    "promtool": "apt-get install prometheus",
    "prometheus": "apt-get install prometheus",
    "podman": "apt-get install podman buildah runc fuse-overlayfs slirp4netns uidmap debootstrap",
    "debootstrap": "apt-get install debootstrap",
}


def need(tool: str) -> str:
    """The tool's path; a skip (a failure under CI) when it is not installed."""
    path = shutil.which(tool)
    if path is None:
        message = f"{tool} not found: {INSTALL.get(tool, 'install it')}"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return path
