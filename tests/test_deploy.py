"""The deployment files agree with the app: every ALERTSLEUTH_* name is a setting and its value passes
the settings' validation, ports match the port the app listens on, commands are the CLI's, and probes
are routes of the role the container runs (deploy/kubernetes/, compose.yaml, Dockerfile)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from server.app import create_app
from server.cli import build_parser
from server.settings import NOT_FIELDS, PREFIX, Settings

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml"))


def _docs() -> list[dict[str, Any]]:
    return [d for path in MANIFESTS for d in yaml.safe_load_all(path.read_text()) if d]


def _kind(kind: str) -> list[dict[str, Any]]:
    return [d for d in _docs() if d["kind"] == kind]


def _env(names: dict[str, str]) -> dict[str, str]:
    """ALERTSLEUTH_* names as settings keys."""
    unknown = [n for n in names if n.startswith(PREFIX) and n not in NOT_FIELDS
               and n[len(PREFIX):].lower() not in Settings.model_fields]  # fmt: skip
    assert not unknown, f"not settings: {unknown}"
    return {n[len(PREFIX) :].lower(): v for n, v in names.items() if n.startswith(PREFIX)}


def _settings(values: dict[str, str]) -> Settings:
    return Settings.model_validate(values)


def _routes(role: str) -> set[str]:
    """The paths the app of `role` answers (its OpenAPI document lists them all)."""
    app = create_app(Settings.model_validate({}), role=role)
    return set(app.openapi()["paths"])


def test_the_manifests_set_only_settings_and_their_values_validate() -> None:
    [config] = _kind("ConfigMap")
    [secret] = _kind("Secret")
    values = {**_env(config["data"]), **_env(secret["stringData"])}
    settings = _settings(values)
    assert settings.database_url.startswith("postgresql+psycopg://")
    assert settings.host == "0.0.0.0"


def test_containers_listen_where_the_app_does_and_probe_its_routes() -> None:
    [config] = _kind("ConfigMap")
    port = _settings(_env(config["data"])).port
    deployments = {d["metadata"]["name"]: d for d in _kind("Deployment")}
    assert set(deployments) == {"alertsleuth-serve", "alertsleuth-worker"}
    parser = build_parser()
    for name, d in deployments.items():
        spec = d["spec"]
        assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
        [container] = spec["template"]["spec"]["containers"]
        args = parser.parse_args(container["args"])
        role = "worker" if args.command == "worker" else "server"
        assert (name == "alertsleuth-worker") == (role == "worker")
        if role == "server":
            assert args.no_workers, "serve replicas leave the investigations to the workers"
        assert [p["containerPort"] for p in container["ports"]] == [port]
        named = {p["name"] for p in container["ports"]}
        routes = _routes(role)
        for probe in ("livenessProbe", "readinessProbe"):
            get = container[probe]["httpGet"]
            assert get["port"] in named or get["port"] == port
            assert get["path"] in routes, (name, probe, get["path"])
        assert {"configMapRef": {"name": "alertsleuth"}} in container["envFrom"]
        assert {"secretRef": {"name": "alertsleuth"}} in container["envFrom"]


def test_the_service_budget_and_autoscaler_point_at_the_serve_replicas() -> None:
    serve = next(d for d in _kind("Deployment") if d["metadata"]["name"] == "alertsleuth-serve")
    labels = serve["spec"]["template"]["metadata"]["labels"]
    [service] = _kind("Service")
    assert service["spec"]["selector"].items() <= labels.items()
    [container] = serve["spec"]["template"]["spec"]["containers"]
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= {p["name"] for p in container["ports"]}
    [pdb] = _kind("PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["minAvailable"] < serve["spec"]["replicas"]
    [hpa] = _kind("HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "alertsleuth-serve"
    assert hpa["spec"]["minReplicas"] >= serve["spec"]["replicas"] >= 2


def test_the_compose_replicas_profile_runs_servers_and_a_worker_on_postgresql() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    replicas = {n: s for n, s in services.items() if "replicas" in s.get("profiles", [])}
    assert {"postgres", "serve-1", "serve-2", "worker"} <= set(replicas)
    parser = build_parser()
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "ALERTSLEUTH_PORT=8080" in dockerfile
    for name in ("serve-1", "serve-2", "worker"):
        svc = replicas[name]
        args = parser.parse_args(svc["command"])
        assert args.command == ("worker" if name == "worker" else "serve")
        values = _env(svc["environment"])
        assert _settings(values).database_url.startswith("postgresql+psycopg://alertsleuth:")
        assert "@postgres:5432/" in values["database_url"]
        for mapping in svc.get("ports", []):
            assert mapping.split(":")[-1] == "8080"
    for name, svc in services.items():
        if "environment" in svc and name not in replicas:
            _env(svc["environment"])


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_every_manifest_is_valid_yaml_with_kinds_and_names(path: Path) -> None:
    for doc in yaml.safe_load_all(path.read_text()):
        assert doc["apiVersion"] and doc["kind"] and doc["metadata"]["name"]
