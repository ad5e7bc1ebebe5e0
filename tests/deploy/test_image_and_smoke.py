"""The image build inputs and the compose smoke's files, checked offline: what `make compose-smoke` found wrong
once (a stale lock, a context filter only BuildKit reads, a volume the image's user cannot write) stays fixed,
and the smoke's overrides change nothing but what they say."""

from __future__ import annotations

import importlib.util
import re
import tomllib

import yaml

from tests.deploy.rendering import REPO, compose


def _key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins() -> dict[str, str]:
    lines = (REPO / "docker" / "constraints.txt").read_text().splitlines()
    return {_key(n): v for n, v in (ln.split("==") for ln in lines if ln.strip() and not ln.startswith("#"))}


def _smoke():
    spec = importlib.util.spec_from_file_location("compose_smoke", REPO / "deploy" / "smoke" / "smoke.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_image_constraints_pin_every_project_dependency() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = _pins()
    missing = [r for r in project["dependencies"] if _key(re.match(r"[A-Za-z0-9_.-]+", r).group()) not in pins]
    assert not missing, f"docker/constraints.txt lacks {missing}: rerun docker/lock.py"


def test_both_builders_get_the_same_context_filter() -> None:
    def rules(path):
        return [ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]

    # BuildKit reads docker/Dockerfile.dockerignore; the classic builder only the context's .dockerignore.
    assert rules(REPO / ".dockerignore") == rules(REPO / "docker" / "Dockerfile.dockerignore")
    assert rules(REPO / ".dockerignore")[0] == "*"


def test_every_volume_the_image_user_writes_is_a_folder_the_image_gives_it() -> None:
    dockerfile = (REPO / "docker" / "Dockerfile").read_text()
    owned = set(re.search(r"install -d -o bbrange -g bbrange ([^\n\\]+)", dockerfile).group(1).split())
    services = compose()["services"]
    for name, service in services.items():
        if service.get("image", "").startswith("${BBRANGE_IMAGE") and service.get("read_only"):
            for volume in service.get("volumes", []):
                source, target, *mode = volume.split(":")
                if not source.startswith((".", "/")) and mode != ["ro"]:
                    # A fresh named volume takes the owner of the image's folder; a missing folder is root's.
                    assert target in owned, f"{name} writes {target}, which the image does not give to bbrange"


def test_the_smoke_override_only_swaps_images_and_leaves_grafana_out() -> None:
    base = compose()["services"]
    override = yaml.safe_load((REPO / "deploy" / "smoke" / "compose.standins.yml").read_text())
    assert set(override) == {"services"}
    for name, service in override["services"].items():
        assert name in base
        assert set(service) <= {"image"} or (name == "grafana" and set(service) == {"profiles"}), name
    assert override["services"]["grafana"]["profiles"]


def test_the_datasets_override_only_binds_the_datasets_volume() -> None:
    override = yaml.safe_load((REPO / "deploy" / "smoke" / "compose.datasets.yml").read_text())
    assert set(override) == {"volumes"} and set(override["volumes"]) == {"datasets"}
    assert "datasets" in compose()["volumes"]


def test_the_stand_ins_replace_the_images_the_deployment_names() -> None:
    standins = _smoke().STANDINS
    services = compose()["services"]
    assert standins["redis"]["replaces"] == services["redis"]["image"]
    assert standins["prometheus"]["replaces"] == services["prometheus"]["image"]
    default = re.search(r"^ARG PYTHON_IMAGE=(\S+)", (REPO / "docker" / "Dockerfile").read_text(), re.M).group(1)
    assert standins["python"]["replaces"] == default


def test_the_trainer_trains_the_configured_datasets_in_compose_and_kubernetes() -> None:
    trainer = compose()["services"]["trainer"]
    assert "$${BBRANGE_TRAIN_DATASETS}" in trainer["command"][0]
    default = re.fullmatch(r"\$\{BBRANGE_TRAIN_DATASETS:-(.*)\}", trainer["environment"]["BBRANGE_TRAIN_DATASETS"])
    config = yaml.safe_load((REPO / "k8s" / "base" / "config.yaml").read_text())
    assert default and default.group(1) == config["data"]["BBRANGE_TRAIN_DATASETS"] == "mnist gtsrb"
    assert "$BBRANGE_TRAIN_DATASETS" in (REPO / "k8s" / "base" / "train-job.yaml").read_text()


def test_the_smoke_reads_the_hosts_debian_mirror(tmp_path, monkeypatch) -> None:
    smoke = _smoke()
    sources = smoke.debian_sources()
    assert [s.split()[2] for s in sources] == ["bookworm", "bookworm-updates", "bookworm-security"]
    assert all(s.startswith("deb http") for s in sources)


def test_the_smoke_adds_requirements_that_only_the_stand_ins_python_needs(tmp_path) -> None:
    import zipfile

    wheel = tmp_path / "redis-8.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("redis-8.1.0.dist-info/METADATA", "Name: redis\nRequires-Dist: async-timeout>=4.0.3; "
                   "python_full_version < \"3.11.3\"\nRequires-Dist: hiredis>=3; extra == \"hiredis\"\n")
    smoke = _smoke()
    assert smoke.missing_requirements(tmp_path, "3.11.2") == ["async-timeout>=4.0.3"]
    assert smoke.missing_requirements(tmp_path, "3.11.14") == []
