"""The deployment files, checked without Docker or a cluster: Dockerfile, deploy/compose.yaml, deploy/k8s/.

Every ``GATEWAY_*`` name they set must be a real setting and its value must parse; probes must point at
the ops endpoints the configured prefix serves; the policy they ship must load with the secrets they
provide; the image must run as a non-root user and check its own health.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from gateway.app import create_app
from gateway.policy import parse_policy
from gateway.settings import VARIABLES, Settings
from tests.conftest import DATA
from tests.support.servers import free_port, serve_in_thread

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
NAMES = {var.env for var in VARIABLES}
GRACEFUL_SHUTDOWN = int(Settings().shutdown_timeout)  # GATEWAY_SHUTDOWN_TIMEOUT default
#: Variables a deployment may set besides GATEWAY_* and the policy's secret_env names.
OTHER_VARIABLES = {"PROMETHEUS_MULTIPROC_DIR", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED"}


def _settings(env: Mapping[str, str]) -> Settings:
    gateway_env = {name: value for name, value in env.items() if name.startswith("GATEWAY_")}
    assert set(gateway_env) <= NAMES, f"not settings: {sorted(set(gateway_env) - NAMES)}"
    settings = Settings.from_env(gateway_env)  # raises SettingsError on a bad value
    if settings.workers > 1:
        assert settings.redis_url, "several workers need GATEWAY_REDIS_URL"
    return settings


def _secret_env_names(policy_text: str) -> set[str]:
    names: set[str] = set()
    for found in re.findall(r"^\s*secret_env\s*=\s*(.+?)\s*(?:#.*)?$", policy_text, re.MULTILINE):
        names |= set(re.findall(r'"([^"]+)"', found))
    return names


# -- Dockerfile -------------------------------------------------------------------------------------


def _instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text()
    joined = re.sub(r"\\\n", " ", text)
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def _final_stage() -> list[tuple[str, str]]:
    instructions = _instructions()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def _env_of(stage: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, rest in stage:
        if keyword == "ENV":
            for pair in shlex.split(rest):
                name, _, value = pair.partition("=")
                env[name] = value
    return env


def test_dockerfile_runs_gateway_serve_as_non_root_on_slim_python() -> None:
    stage = _final_stage()
    assert stage[0][1].startswith("python:3.11-slim")
    users = [rest for keyword, rest in stage if keyword == "USER"]
    assert users, "the image runs as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0") and user.isdigit(), "a numeric non-root USER (runAsNonRoot checks it)"
    env = _env_of(stage)
    assert env["GATEWAY_HOST"] == "0.0.0.0"
    _settings(env)
    assert set(env) - NAMES <= OTHER_VARIABLES
    entry = [json.loads(rest) for keyword, rest in stage if keyword in ("ENTRYPOINT", "CMD")]
    assert entry[0] + entry[1] == ["gateway", "serve"]
    installs = " ".join(rest for keyword, rest in _instructions() if keyword == "RUN")
    assert "[proxy,metrics]" in installs


def _healthcheck() -> list[str]:
    checks = [rest for keyword, rest in _final_stage() if keyword == "HEALTHCHECK"]
    assert len(checks) == 1, "one HEALTHCHECK"
    command = json.loads(checks[0].split(" CMD ", 1)[1])
    assert isinstance(command, list) and command[0] == "python"
    return [sys.executable, *command[1:]]


def test_dockerfile_healthcheck_probes_the_health_endpoint() -> None:
    command = _healthcheck()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    app = create_app(Settings(config=str(DATA / "policy.toml"), ops_prefix="/ops"))
    with serve_in_thread(app) as url:
        port = url.rsplit(":", 1)[1]
        ok = subprocess.run(command, env={**env, "GATEWAY_PORT": port, "GATEWAY_OPS_PREFIX": "/ops"},
                            capture_output=True, timeout=10)
        assert ok.returncode == 0, ok.stderr
        wrong_prefix = subprocess.run(command, env={**env, "GATEWAY_PORT": port}, capture_output=True,
                                      timeout=10)
        assert wrong_prefix.returncode != 0  # /_gateway/health is not served there
    nobody = subprocess.run(command, env={**env, "GATEWAY_PORT": str(free_port())}, capture_output=True,
                            timeout=10)
    assert nobody.returncode != 0


# -- deploy/compose.yaml ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return data


def _compose_env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    assert isinstance(env, dict), "environment as a mapping"
    return {name: str(value) for name, value in env.items()}


def test_compose_runs_gateway_redis_and_an_upstream(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"gateway", "redis", "upstream"} <= set(services)
    gateway = services["gateway"]
    assert gateway["image"]
    context = (DEPLOY / gateway["build"]["context"]).resolve()
    assert (context / gateway["build"].get("dockerfile", "Dockerfile")).is_file()
    settings = _settings(_compose_env(gateway))
    assert settings.host == "0.0.0.0"
    assert f"{settings.port}:{settings.port}" in [str(p) for p in gateway["ports"]]
    # The upstream and Redis URLs name services of this file, on the ports they listen on.
    upstream = urlsplit(settings.upstream_url or "")
    assert upstream.hostname == "upstream"
    command = services["upstream"]["command"]
    assert command[command.index("--port") + 1] == str(upstream.port)
    assert str(upstream.port) in [str(p) for p in services["upstream"].get("expose", [])]
    assert urlsplit(settings.redis_url or "").hostname == "redis"
    assert gateway["depends_on"]["redis"]["condition"] == "service_healthy"
    assert services["redis"]["healthcheck"]["test"]
    grace = re.fullmatch(r"(\d+)s", gateway["stop_grace_period"])
    assert grace is not None and int(grace[1]) > GRACEFUL_SHUTDOWN


def test_compose_policy_loads_with_the_secrets_it_is_given(compose: dict[str, Any]) -> None:
    gateway = compose["services"]["gateway"]
    env = _compose_env(gateway)
    config = PurePosixPath(env["GATEWAY_CONFIG"])
    mounts = {PurePosixPath(target.split(":")[0]): source for source, target in
              (volume.split(":", 1) for volume in gateway["volumes"])}
    policy_file = DEPLOY / mounts[config]
    text = policy_file.read_text()
    secret_names = _secret_env_names(text)
    assert secret_names and secret_names <= set(env), "every secret_env is set for the gateway"
    for name in secret_names:
        assert env[name].startswith("${"), f"{name}: a secret comes from the shell, never from the file"
    assert set(env) - NAMES <= OTHER_VARIABLES | secret_names
    parse_policy(text, str(policy_file), {name: f"test-{name}" for name in secret_names})


# -- deploy/k8s/ ------------------------------------------------------------------------------------


def _documents() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                yield path.name, document


@pytest.fixture(scope="module")
def manifests() -> dict[str, dict[str, Any]]:
    by_kind: dict[str, dict[str, Any]] = {}
    for name, document in _documents():
        assert document["kind"] not in by_kind, f"{name}: a second {document['kind']}"
        by_kind[document["kind"]] = document
    return by_kind


def test_k8s_has_every_object_and_kustomize_lists_them(manifests: dict[str, dict[str, Any]]) -> None:
    assert set(manifests) == {"ConfigMap", "Secret", "Deployment", "Service", "HorizontalPodAutoscaler"}
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files


def _container(manifests: dict[str, dict[str, Any]]) -> dict[str, Any]:
    containers = manifests["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


def test_k8s_deployment_probes_the_ops_endpoints(manifests: dict[str, dict[str, Any]]) -> None:
    container = _container(manifests)
    assert container["image"]
    assert container.get("args", []) in (["serve"], [])
    env = {item["name"]: str(item["value"]) for item in container["env"]}
    settings = _settings(env)
    assert settings.host == "0.0.0.0"
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    for probe, endpoint in (("readinessProbe", "ready"), ("livenessProbe", "health")):
        get = container[probe]["httpGet"]
        assert get["path"] == f"{settings.ops_prefix}/{endpoint}", probe
        assert ports.get(get["port"], get["port"]) == settings.port, probe
    template = manifests["Deployment"]["spec"]["template"]
    assert template["metadata"]["annotations"]["prometheus.io/path"] == f"{settings.ops_prefix}/metrics"
    assert template["spec"]["terminationGracePeriodSeconds"] > GRACEFUL_SHUTDOWN
    replicas = max(manifests["Deployment"]["spec"]["replicas"],
                   manifests["HorizontalPodAutoscaler"]["spec"]["maxReplicas"])
    assert replicas == 1 or settings.redis_url, "replicas share state only through Redis"


def test_k8s_pod_runs_as_non_root(manifests: dict[str, dict[str, Any]]) -> None:
    pod = manifests["Deployment"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    container = _container(manifests)
    assert container["securityContext"]["allowPrivilegeEscalation"] is False


def test_k8s_policy_loads_with_the_secret_and_is_mounted_at_gateway_config(
        manifests: dict[str, dict[str, Any]]) -> None:
    container = _container(manifests)
    pod = manifests["Deployment"]["spec"]["template"]["spec"]
    env = {item["name"]: item["value"] for item in container["env"]}
    config = PurePosixPath(env["GATEWAY_CONFIG"])
    mount = next(m for m in container["volumeMounts"] if PurePosixPath(m["mountPath"]) == config.parent)
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    configmap = manifests["ConfigMap"]
    assert volume["configMap"]["name"] == configmap["metadata"]["name"]
    text = configmap["data"][config.name]
    secret = manifests["Secret"]
    assert [source["secretRef"]["name"] for source in container["envFrom"]] == [secret["metadata"]["name"]]
    provided = secret["stringData"]
    assert "secrets =" not in text and "secrets=" not in text, "no inline secret in a ConfigMap"
    assert _secret_env_names(text) <= set(provided)
    parse_policy(text, "deploy/k8s/configmap.yaml", provided)
    assert not set(provided) & NAMES, "the Secret holds secrets only, no settings"


def test_k8s_service_and_autoscaler_target_the_deployment(manifests: dict[str, dict[str, Any]]) -> None:
    deployment = manifests["Deployment"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    service = manifests["Service"]["spec"]
    assert service["selector"].items() <= labels.items()
    port_names = {port["name"] for port in _container(manifests)["ports"]}
    assert all(port["targetPort"] in port_names for port in service["ports"])
    target = manifests["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    hpa = manifests["HorizontalPodAutoscaler"]["spec"]
    assert 1 <= hpa["minReplicas"] <= hpa["maxReplicas"]
    # Utilization targets are relative to the container's CPU request: without one the HPA does nothing.
    assert _container(manifests)["resources"]["requests"]["cpu"]
