"""Every kustomize overlay renders and passes Kubernetes' own schemas; the pieces agree.

`kubectl kustomize` renders offline; `kubernetes-validate --strict` checks each object against
the OpenAPI schemas of KUBERNETES_VERSION, unknown fields included. Custom resources
(ServiceMonitor, PrometheusRule, InferenceService) have no schema there: their rules go
through promtool (test_alert_rules.py) and the InferenceService's pod through the Pod schema.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from contract import IMAGE_TAG_FILES, sync_image_tags
from deploy.container import image_tag, served_version
from tests.deploy.conftest import need

pytestmark = pytest.mark.deploy

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
KUBERNETES_VERSION = "1.31.0"
OVERLAYS = ["base", "overlays/production", "overlays/kserve"]
CUSTOM_KINDS = {"ServiceMonitor", "PrometheusRule", "InferenceService"}


def render(overlay: str) -> str:
    """`kubectl kustomize deploy/k8s/<overlay>`."""
    kubectl = need("kubectl")
    return subprocess.run([kubectl, "kustomize", str(K8S / overlay)], check=True, capture_output=True, text=True).stdout


def objects(overlay: str) -> dict[str, dict[str, Any]]:
    """The rendered objects by kind (one of each kind per overlay)."""
    return {doc["kind"]: doc for doc in yaml.safe_load_all(render(overlay)) if doc}


def validate_cli(path: Path) -> subprocess.CompletedProcess[str]:
    """kubernetes-validate --strict, as a user would run it."""
    cmd = [sys.executable, "-m", "kubernetes_validate", "--strict", "-k", KUBERNETES_VERSION, str(path)]
    return subprocess.run(cmd, capture_output=True, text=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_renders_and_validates_strictly(overlay: str, tmp_path: Path) -> None:
    path = tmp_path / "rendered.yaml"
    path.write_text(render(overlay))
    result = validate_cli(path)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    kinds = {doc["kind"] for doc in yaml.safe_load_all(path.read_text()) if doc}
    for kind in kinds - CUSTOM_KINDS:
        assert f"passed for resource {kind.lower()}/" in out, out
    for line in out.splitlines():
        if line.startswith("WARN"):  # only custom resources may lack a schema
            assert any(f"kind {kind} " in line for kind in CUSTOM_KINDS), line


def test_strict_validation_refuses_an_unknown_field(tmp_path: Path) -> None:
    """The check above can fail: a misspelt field is an error under --strict."""
    deployment = objects("base")["Deployment"]
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"httpGet": {"path": "/readyz"}}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(deployment))
    assert validate_cli(path).returncode != 0


def test_deployment_is_hardened_and_sized() -> None:
    """Non-root, read-only root, requests = limits in whole CPUs (= workers), BentoML's probes."""
    base = objects("base")
    pod = base["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/tmp"}  # the image's BENTOML_HOME
    res = container["resources"]
    assert res["requests"] == res["limits"]  # Guaranteed: the quota is the cores the workers get
    assert float(res["limits"]["cpu"]).is_integer()  # service.settings.cpu_count floors the quota
    workers = next(e["valueFrom"]["resourceFieldRef"] for e in container["env"] if e["name"] == "MNIST_WORKERS")
    assert workers == {"containerName": container["name"], "resource": "limits.cpu", "divisor": "1"}
    assert container["startupProbe"]["httpGet"]["path"] == "/readyz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"


def test_termination_grace_covers_the_drain() -> None:
    """preStop sleep + BentoML's graceful-shutdown timeout < the pod's grace; requests time out before."""
    pod = objects("base")["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    pre_stop = int(container["lifecycle"]["preStop"]["exec"]["command"][1])
    args = container["args"]
    drain = int(args[args.index("--timeout-graceful-shutdown") + 1])
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    assert float(env["MNIST_TIMEOUT_S"]) <= drain
    assert pre_stop + drain < pod["terminationGracePeriodSeconds"]


def test_selectors_reach_the_pods() -> None:
    """Service, PDB, NetworkPolicy and ServiceMonitor all select the Deployment's pods."""
    prod = objects("overlays/production")
    labels = prod["Deployment"]["spec"]["template"]["metadata"]["labels"]

    def selects(selector: dict[str, str], target: dict[str, str]) -> bool:
        return bool(selector) and all(target.get(k) == v for k, v in selector.items())

    assert selects(prod["Service"]["spec"]["selector"], labels)
    assert selects(prod["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"], labels)
    assert selects(prod["NetworkPolicy"]["spec"]["podSelector"]["matchLabels"], labels)
    assert selects(prod["ServiceMonitor"]["spec"]["selector"]["matchLabels"], prod["Service"]["metadata"]["labels"])
    port_names = {p["name"] for p in prod["Service"]["spec"]["ports"]}
    assert {e["port"] for e in prod["ServiceMonitor"]["spec"]["endpoints"]} <= port_names
    hpa_target = prod["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (hpa_target["kind"], hpa_target["name"]) == ("Deployment", prod["Deployment"]["metadata"]["name"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_image_tag_is_the_served_model_version(overlay: str) -> None:
    """The image every overlay deploys is tagged with served.json's version, as `make container` tags it."""
    rendered = objects(overlay)
    kind = "InferenceService" if "InferenceService" in rendered else "Deployment"
    spec = rendered[kind]["spec"]
    pod = spec["predictor"] if kind == "InferenceService" else spec["template"]["spec"]
    image = pod["containers"][0]["image"]
    assert image.endswith(":" + served_version()), image
    assert image.rsplit("/", 1)[-1] == image_tag(served_version())


def test_a_promotion_moves_a_pinned_overlay_and_drops_its_stale_digest(tmp_path: Path) -> None:
    """Production pinned to a digest as `kustomize edit set image` writes it (keys sorted): the next
    promotion retags it with the base and drops the digest, which names the previous image."""
    for folder in ("k8s", "monitoring"):  # production's monitoring component sits beside k8s/
        shutil.copytree(REPO / "deploy" / folder, tmp_path / "deploy" / folder)
    prod = tmp_path / "deploy" / "k8s" / "overlays" / "production" / "kustomization.yaml"
    pinned = f"- digest: sha256:{'0' * 64}\n  name: mnist\n  newName: registry.example.com/mnist\n  newTag: old\n"
    prod.write_text(re.sub(r"^images:\n(?:[ ]+[^\n]*\n)+", "images:\n" + pinned, prod.read_text(), flags=re.M))
    kubectl = need("kubectl")

    def image(overlay: Path) -> str:
        out = subprocess.run([kubectl, "kustomize", str(overlay)], check=True, capture_output=True, text=True).stdout
        deployment = next(doc for doc in yaml.safe_load_all(out) if doc and doc["kind"] == "Deployment")
        return str(deployment["spec"]["template"]["spec"]["containers"][0]["image"])

    assert image(prod.parent) == f"registry.example.com/mnist:old@sha256:{'0' * 64}"
    changed = sync_image_tags(tmp_path, "mnist-cnn-12345678")
    assert prod in changed and {tmp_path / rel for rel in IMAGE_TAG_FILES} <= set(changed)
    assert image(prod.parent) == "registry.example.com/mnist:mnist-cnn-12345678"
    assert image(prod.parent.parent.parent / "base") == "mnist:mnist-cnn-12345678"


def _without_port(probe: dict[str, Any]) -> dict[str, Any]:
    """A probe less its port (the base names it `http`; KServe's custom container uses 3000)."""
    return {**probe, "httpGet": {k: v for k, v in probe["httpGet"].items() if k != "port"}}


def test_kserve_is_on_par_with_the_base() -> None:
    """The same probes to the second, the same drain, resources and security, and the base's
    PodDisruptionBudget and NetworkPolicy selecting the predictor's pods."""
    base = objects("base")
    base_pod = base["Deployment"]["spec"]["template"]["spec"]
    kserve = objects("overlays/kserve")
    predictor = kserve["InferenceService"]["spec"]["predictor"]
    (ours,), (theirs,) = base_pod["containers"], predictor["containers"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert _without_port(theirs[probe]) == _without_port(ours[probe]), probe
    for field in ("resources", "securityContext", "lifecycle", "args"):
        assert theirs[field] == ours[field], field
    assert predictor["terminationGracePeriodSeconds"] == base_pod["terminationGracePeriodSeconds"]
    pods = {"serving.kserve.io/inferenceservice": kserve["InferenceService"]["metadata"]["name"]}
    assert kserve["PodDisruptionBudget"]["spec"] == {
        **base["PodDisruptionBudget"]["spec"],
        "selector": {"matchLabels": pods},
    }
    policy, base_policy = kserve["NetworkPolicy"]["spec"], base["NetworkPolicy"]["spec"]
    assert policy["podSelector"]["matchLabels"] == pods
    assert policy["egress"] == base_policy["egress"] and policy["policyTypes"] == base_policy["policyTypes"]
    assert policy["ingress"] == [{"ports": [{"port": theirs["ports"][0]["containerPort"], "protocol": "TCP"}]}]


def test_kserve_predictor_is_a_valid_pod() -> None:
    """The InferenceService's predictor, less KServe's own fields, passes the strict Pod schema."""
    predictor = dict(objects("overlays/kserve")["InferenceService"]["spec"]["predictor"])
    for kserve_field in ("minReplicas", "maxReplicas", "scaleTarget", "scaleMetric"):
        predictor.pop(kserve_field, None)
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "mnist"}, "spec": predictor}
    kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)
    assert predictor["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
