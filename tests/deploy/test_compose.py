"""docker compose files: valid against the compose specification (check-jsonschema's vendored schema), and
wired the way the range needs."""

from __future__ import annotations

import subprocess

import pytest

from tests.deploy.rendering import COMPOSE_FILES, REPO, compose, tool

SCRAPED = {"oracle": 8000, "attacker-api": 8100, "attacker-worker": 9100}


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_compose_file_validates_against_the_compose_spec(path) -> None:
    result = subprocess.run([tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_spec_check_rejects_unknown_keys(tmp_path) -> None:
    bad = tmp_path / "compose.yml"
    bad.write_text("services:\n  oracle:\n    image: x\n    replicaz: 2\n")
    result = subprocess.run([tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(bad)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0


def test_services_and_their_wiring() -> None:
    c = compose()
    s = c["services"]
    assert set(s) == {"redis", "trainer", "oracle", "attacker-api", "attacker-worker", "prometheus", "grafana"}
    # Redis persists (append-only file on a volume).
    assert s["redis"]["command"][s["redis"]["command"].index("--appendonly") + 1] == "yes"
    assert any(v.endswith(":/data") for v in s["redis"]["volumes"])
    # The trainer is one-shot and the oracle waits for it and for a healthy Redis.
    assert s["trainer"]["restart"] == "no"
    assert s["oracle"]["depends_on"]["trainer"]["condition"] == "service_completed_successfully"
    assert s["oracle"]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert "models:/models:ro" in s["oracle"]["volumes"] and "models:/models" in s["trainer"]["volumes"]
    # The admin token is never committed: compose refuses to start without it.
    assert s["oracle"]["environment"]["BBRANGE_ADMIN_TOKEN"].startswith("${BBRANGE_ADMIN_TOKEN:?")
    # Workers scale: no fixed name, no published port.
    assert "container_name" not in s["attacker-worker"] and "ports" not in s["attacker-worker"]
    # Every published port is on loopback only.
    for name, service in s.items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
    # Health checks on every long-running service.
    for name in ("redis", "oracle", "attacker-api", "attacker-worker", "prometheus", "grafana"):
        assert s[name]["healthcheck"]["test"], name
    # Grafana: anonymous viewers, provisioned datasource and dashboards.
    env = s["grafana"]["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true" and env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert "./deploy/grafana/dashboards:/var/lib/grafana/dashboards:ro" in s["grafana"]["volumes"]
    # The attacker may target the compose oracle (its allowlist is loopback-only by default).
    assert "http://oracle:8000" in s["attacker-api"]["environment"]["BBRANGE_ATTACK_ORACLE_ALLOWLIST"]


def test_prometheus_scrapes_every_service_at_its_port() -> None:
    import yaml

    config = yaml.safe_load((REPO / "deploy" / "prometheus" / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    services = compose()["services"]
    for name, port in SCRAPED.items():
        sd = jobs[name]["dns_sd_configs"][0]
        assert sd["names"] == [name] and sd["port"] == port and sd["type"] == "A"
        assert name in services
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    assert "./deploy/prometheus/rules:/etc/prometheus/rules:ro" in services["prometheus"]["volumes"]


def test_gpu_override_reserves_an_nvidia_gpu_for_the_oracle() -> None:
    gpu = compose(COMPOSE_FILES[1])["services"]
    for name in ("oracle", "trainer"):
        (device,) = gpu[name]["deploy"]["resources"]["reservations"]["devices"]
        assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"], name
        assert "whl/cu" in gpu[name]["build"]["args"]["TORCH_INDEX_URL"], name
    assert gpu["oracle"]["command"][-2:] == ["--device", "cuda"]


def test_the_grafana_provisioning_points_at_the_compose_prometheus() -> None:
    import yaml

    ds = yaml.safe_load((REPO / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())["datasources"]
    assert ds[0]["url"] == "http://prometheus:9090" and ds[0]["type"] == "prometheus"
    providers = yaml.safe_load((REPO / "deploy/grafana/provisioning/dashboards/bbrange.yml").read_text())["providers"]
    assert providers[0]["options"]["path"] == "/var/lib/grafana/dashboards"
