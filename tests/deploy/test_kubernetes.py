"""The Kubernetes manifests: valid against the schemas of the Kubernetes versions we support
(bundled in kubernetes-validate, offline), and wired the way the gateway and its image need."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from pydantic import BaseModel

from settings.model import Settings, memcached_nodes

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "deploy/kubernetes"
VERSIONS = ["1.32.0", kubernetes_validate.latest_version()]
CLI_VARIABLES = {"GATEWAY_HOST", "GATEWAY_PORT", "GATEWAY_WORKERS", "GATEWAY_GRACEFUL_TIMEOUT_S"}
"""Read by ``gateway serve`` itself rather than by the settings model."""


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def resources() -> dict[tuple[str, str], dict[str, Any]]:
    found = {}
    for path in sorted(MANIFESTS.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in documents(path):
            found[(doc["kind"], doc["metadata"]["name"])] = doc
    return found


def container(kind: str, name: str) -> dict[str, Any]:
    spec: dict[str, Any] = resources()[(kind, name)]["spec"]["template"]["spec"]
    first: dict[str, Any] = spec["containers"][0]
    return first


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("key", sorted(resources()), ids=lambda key: "/".join(key))
def test_valid_against_the_kubernetes_schema(key: tuple[str, str], version: str) -> None:
    kubernetes_validate.validate(resources()[key], version, strict=True)


def test_the_validation_would_catch_a_mistake() -> None:
    deployment = resources()[("Deployment", "venue-gateway")]
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)


def test_the_kustomization_lists_every_manifest_but_the_job() -> None:
    [kustomization] = documents(MANIFESTS / "kustomization.yaml")
    on_disk = {p.name for p in MANIFESTS.glob("*.yaml")} - {
        "kustomization.yaml",
        "migrate-job.yaml",
    }
    assert set(kustomization["resources"]) == on_disk


def test_the_cache_url_lists_every_memcached_pod() -> None:
    everything = resources()
    statefulset = everything[("StatefulSet", "memcached")]
    service = everything[("Service", statefulset["spec"]["serviceName"])]
    assert service["spec"]["clusterIP"] == "None", "pod names need a headless Service"
    port = service["spec"]["ports"][0]["port"]
    pods = [
        (f"memcached-{i}.{service['metadata']['name']}", port)
        for i in range(statefulset["spec"]["replicas"])
    ]
    config = everything[("ConfigMap", "venue-gateway")]["data"]
    assert memcached_nodes(config["GATEWAY_CACHE__URL"]) == pods


def test_every_setting_is_one_the_gateway_knows() -> None:
    everything = resources()
    variables = {
        **everything[("ConfigMap", "venue-gateway")]["data"],
        **everything[("Secret", "venue-gateway")]["stringData"],
    }
    for variable in set(variables) - CLI_VARIABLES:
        model: type[BaseModel] = Settings
        for part in variable.removeprefix("GATEWAY_").lower().split("__"):
            assert part in model.model_fields, f"{variable} is not a setting"
            annotation = model.model_fields[part].annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                model = annotation


def test_the_security_context_matches_the_image() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    uid, gid = re.findall(r"^USER (\d+):(\d+)", dockerfile, re.MULTILINE)[-1]
    for kind, name in [("Deployment", "venue-gateway"), ("Job", "venue-gateway-migrate")]:
        pod = resources()[(kind, name)]["spec"]["template"]["spec"]["securityContext"]
        assert (pod["runAsUser"], pod["runAsGroup"]) == (int(uid), int(gid))
        assert pod["runAsNonRoot"] is True
        context = container(kind, name)["securityContext"]
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]


def test_probes_and_a_graceful_stop() -> None:
    gateway = container("Deployment", "venue-gateway")
    assert gateway["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert gateway["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert gateway["resources"]["requests"]["cpu"]
    assert gateway["resources"]["limits"]["memory"]
    pause = int(gateway["lifecycle"]["preStop"]["exec"]["command"][-1])
    graceful = int(
        resources()[("ConfigMap", "venue-gateway")]["data"]["GATEWAY_GRACEFUL_TIMEOUT_S"]
    )
    grace = resources()[("Deployment", "venue-gateway")]["spec"]["template"]["spec"][
        "terminationGracePeriodSeconds"
    ]
    assert grace > pause + graceful


def test_disruption_budget_and_autoscaler_target_the_gateway() -> None:
    everything = resources()
    labels = everything[("Deployment", "venue-gateway")]["spec"]["template"]["metadata"]["labels"]
    pdb = everything[("PodDisruptionBudget", "venue-gateway")]["spec"]
    assert pdb["selector"]["matchLabels"].items() <= labels.items()
    hpa = everything[("HorizontalPodAutoscaler", "venue-gateway")]["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "venue-gateway",
    }
    assert hpa["minReplicas"] > pdb["maxUnavailable"]
    service = everything[("Service", "venue-gateway")]["spec"]
    assert service["selector"].items() <= labels.items()


def test_the_autoscaler_alone_sets_the_replica_count() -> None:
    everything = resources()
    for hpa in (doc for (kind, _), doc in everything.items() if kind == "HorizontalPodAutoscaler"):
        target = hpa["spec"]["scaleTargetRef"]
        scaled = everything[(target["kind"], target["name"])]
        assert "replicas" not in scaled["spec"], (
            f"{target['kind']}/{target['name']} is scaled by an autoscaler: every apply "
            "would reset its count to spec.replicas"
        )
