"""deploy/: every file is checked as far as this machine allows, all offline.

- YAML: every file parses.
- Kubernetes: every manifest validates against the Kubernetes JSON schemas that
  kubernetes-validate bundles (strict: unknown fields are errors); KEDA's
  ScaledObject is not a core kind, so it is checked against a schema of KEDA's
  documented ScaledObject fields written here, and against the rest of the
  manifests (the Deployment it scales, the queue list it measures, the Redis).
- Compose: validated against the compose-spec schema that check-jsonschema bundles.
- Dockerfile: parsed; it installs the project and its CMD is a real celerity command.
- systemd: units parsed and checked for the keys they need (always), and
  ``systemd-analyze verify`` on them when the machine has it.

Every command a file runs (container args, compose commands, ExecStart) is
parsed by the real ``celerity`` CLI, so a renamed option breaks this test.
"""

from __future__ import annotations

import configparser
import json
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
SYSTEMD = DEPLOY / "systemd"
EXPECTED_SERVICES = {"redis", "worker", "coordinator", "dashboard", "flower"}
# The dashboard command is being built; until it exists, its argv is checked by shape.
DASHBOARD_ARGV = ["dashboard", "--host", "0.0.0.0", "--port", "8433"]


# --- helpers ----------------------------------------------------------------------------------


def yaml_documents(path: Path) -> list[Any]:
    with open(path) as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


def manifests() -> list[tuple[Path, dict[str, Any]]]:
    """Every Kubernetes object under deploy/kubernetes (kustomizations excluded)."""
    found = []
    for path in sorted(KUBERNETES.rglob("*.yaml")):
        for doc in yaml_documents(path):
            if doc.get("kind") != "Kustomization":
                found.append((path, doc))
    return found


def assert_celerity_command(argv: list[str]) -> None:
    """``argv`` (``celerity ...``) names a real command whose options the CLI accepts."""
    import click

    from celerity.cli import main

    assert argv[0].endswith("celerity"), argv
    args = argv[1:]
    if args[:1] == ["dashboard"] and "dashboard" not in main.commands:
        assert args == [*DASHBOARD_ARGV[:2], args[2], *DASHBOARD_ARGV[3:]], args
        return
    command: click.Command = main
    ctx = click.Context(main, info_name="celerity")
    while isinstance(command, click.Group):
        name, args = args[0], args[1:]
        sub = command.get_command(ctx, name)
        assert sub is not None, f"no celerity command {name!r} in {argv}"
        command, ctx = sub, click.Context(sub, info_name=name, parent=ctx)
    command.make_context(command.name, list(args), parent=ctx.parent)  # raises on bad options


def assert_tools_command(argv: list[str]) -> None:
    """A ``celery`` command on the tools app (Flower, probes)."""
    assert argv[:3] == ["celery", "-A", "workers.celery_app"], argv


def containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return list(doc.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []))


def by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for _, doc in manifests() if doc["kind"] == kind}


def config_data() -> dict[str, str]:
    (config,) = by_kind("ConfigMap").values()
    return dict(config["data"])


# --- YAML and Kubernetes ------------------------------------------------------------------------


def test_every_yaml_file_parses() -> None:
    files = sorted(DEPLOY.rglob("*.yaml"))
    assert len(files) >= 9, files
    for path in files:
        assert yaml_documents(path), f"{path} holds no document"


@pytest.mark.parametrize(
    "path,doc",
    [(p, d) for p, d in manifests() if d["kind"] != "ScaledObject"],
    ids=lambda value: value.name if isinstance(value, Path) else value["kind"],
)
def test_manifest_validates_against_kubernetes_schema(path: Path, doc: dict[str, Any]) -> None:
    import kubernetes_validate
    from kubernetes_validate.utils import latest_version

    # Bundled schemas, no network; strict rejects fields Kubernetes does not know.
    kubernetes_validate.validate(doc, latest_version(), strict=True)


def test_manifests_cover_the_fleet_with_liveness_probes() -> None:
    deployments = by_kind("Deployment")
    assert {"celerity-worker", "celerity-coordinator", "celerity-dashboard"} <= set(deployments)
    assert "redis" in by_kind("StatefulSet") and "redis" in by_kind("Service")
    for name, doc in [*deployments.items(), *by_kind("StatefulSet").items()]:
        for container in containers(doc):
            assert "livenessProbe" in container, f"{name}/{container['name']} has no liveness probe"
    for name in ("celerity-worker", "celerity-coordinator", "celerity-dashboard"):
        (container,) = containers(deployments[name])
        assert_celerity_command(container["args"])
        sources = {ref.get("configMapRef", ref.get("secretRef", {})).get("name")
                   for ref in container["envFrom"]}
        assert sources == {"celerity-config", "celerity-signing-key"}, sources


def test_probes_ping_the_node_names_the_workers_take(monkeypatch: pytest.MonkeyPatch) -> None:
    """The probes assume the process is PID 1 in its container; the names come from worker_argv."""
    import os

    from workers.main import worker_argv

    monkeypatch.setattr(os, "getpid", lambda: 1)
    deployments = by_kind("Deployment")
    pairs = (("worker", "celerity-worker"), ("coordinator", "celerity-coordinator"))
    for kind, deployment in pairs:
        argv = worker_argv(["q"], 1, "solo", "INFO", kind)
        node = argv[argv.index("-n") + 1].replace("%h", "$HOSTNAME")
        (container,) = containers(deployments[deployment])
        probe = " ".join(container["livenessProbe"]["exec"]["command"])
        assert f'-d "{node}"' in probe, probe
        assert_tools_command(shlex.split(probe.split("-c ", 1)[1]))


def dashboard_paths() -> set[str]:
    """The paths the real dashboard app serves (built on an in-memory store)."""
    from broker_config.settings import CeleritySettings
    from celerity.dashboard.app import create_app
    from engine.store.memory import MemoryRunStore

    app = create_app(CeleritySettings(), MemoryRunStore())
    return {getattr(route, "path", "") for route in app.routes}


def test_dashboard_probes_and_scrapes_paths_it_serves() -> None:
    (container,) = containers(by_kind("Deployment")["celerity-dashboard"])
    paths = dashboard_paths()
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["path"] in paths, (probe, paths)
    annotations = by_kind("Deployment")["celerity-dashboard"]["spec"]["template"]["metadata"][
        "annotations"
    ]
    assert annotations["prometheus.io/path"] in paths
    check = compose()["services"]["dashboard"]["healthcheck"]["test"]
    assert any(f"8433{path}'" in check[-1] for path in paths if path != "/"), check


def test_kustomizations_list_every_manifest() -> None:
    for kustomization in KUBERNETES.rglob("kustomization.yaml"):
        (doc,) = yaml_documents(kustomization)
        listed = set(doc["resources"])
        present = {p.name for p in kustomization.parent.glob("*.yaml")} - {"kustomization.yaml"}
        assert listed == present, (kustomization, listed ^ present)


# KEDA's ScaledObject (keda.sh/v1alpha1), as its documentation describes the fields
# used here; additionalProperties false catches a misspelt field.
SCALED_OBJECT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "keda.sh/v1alpha1"},
        "kind": {"const": "ScaledObject"},
        "metadata": {"type": "object", "required": ["name"]},
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["scaleTargetRef", "triggers"],
            "properties": {
                "scaleTargetRef": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["name"],
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "name": {"type": "string"},
                        "envSourceContainerName": {"type": "string"},
                    },
                },
                "pollingInterval": {"type": "integer", "minimum": 1},
                "cooldownPeriod": {"type": "integer", "minimum": 0},
                "initialCooldownPeriod": {"type": "integer", "minimum": 0},
                "idleReplicaCount": {"type": "integer", "minimum": 0},
                "minReplicaCount": {"type": "integer", "minimum": 0},
                "maxReplicaCount": {"type": "integer", "minimum": 1},
                "advanced": {"type": "object"},
                "fallback": {"type": "object"},
                "triggers": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["type", "metadata"],
                        "properties": {
                            "type": {"type": "string"},
                            "name": {"type": "string"},
                            "useCachedMetrics": {"type": "boolean"},
                            "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                            # KEDA reads every metadata value as a string.
                            "metadata": {
                                "type": "object",
                                "additionalProperties": {"type": "string"},
                            },
                            "authenticationRef": {"type": "object", "required": ["name"]},
                        },
                    },
                },
            },
        },
    },
}
# The redis (list length) scaler: its documented parameters, and what it requires.
REDIS_TRIGGER_METADATA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["listName", "listLength"],
    "oneOf": [{"required": ["address"]}, {"required": ["addressFromEnv"]},
              {"required": ["host", "port"]}],
    "properties": {
        name: {"type": "string"}
        for name in (
            "address", "addressFromEnv", "host", "hostFromEnv", "port", "portFromEnv",
            "usernameFromEnv", "passwordFromEnv", "listName", "listLength",
            "activationListLength", "enableTLS", "unsafeSsl", "databaseIndex",
        )
    },
}


def test_keda_scales_workers_on_the_task_queue_list() -> None:
    from broker_config.settings import CeleritySettings

    (scaled,) = by_kind("ScaledObject").values()
    jsonschema.validate(scaled, SCALED_OBJECT_SCHEMA)
    target = scaled["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", "celerity-worker")
    assert target["name"] in by_kind("Deployment")
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "redis"
    metadata = trigger["metadata"]
    jsonschema.validate(metadata, REDIS_TRIGGER_METADATA)
    assert int(metadata["listLength"]) >= 1

    # kombu keeps a queue's jobs in a Redis list named after the queue.
    assert metadata["listName"] == CeleritySettings().default_queue
    config = config_data()
    broker = urlsplit(config["CELERITY_BROKER_URL"])
    assert config[metadata["addressFromEnv"]] == f"{broker.hostname}:{broker.port}"
    assert metadata["databaseIndex"] == broker.path.strip("/")


# --- compose ------------------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    (doc,) = yaml_documents(DEPLOY / "compose.yaml")
    return dict(doc)


def test_compose_validates_against_the_compose_spec() -> None:
    from importlib.resources import files

    schema_file = files("check_jsonschema") / "builtin_schemas" / "vendor" / "compose-spec.json"
    schema = json.loads(schema_file.read_text())
    jsonschema.validate(compose(), schema)


def test_compose_runs_the_fleet_with_flower_keyless() -> None:
    services = compose()["services"]
    assert set(services) == EXPECTED_SERVICES
    assert services["redis"]["command"][:3] == ["redis-server", "--appendonly", "yes"]
    for name in ("worker", "coordinator", "dashboard"):
        service = services[name]
        assert_celerity_command(service["command"])
        assert "CELERITY_SIGNING_KEY" in service["environment"]
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        assert (DEPLOY / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
    assert services["worker"]["deploy"]["replicas"] >= 2
    flower = services["flower"]
    assert_tools_command(flower["command"]) and "flower" in flower["command"]
    # A monitor never holds the key: it could sign jobs through Flower's task API.
    assert "CELERITY_SIGNING_KEY" not in flower["environment"]
    assert flower["environment"]["CELERITY_BROKER_URL"] == (
        services["worker"]["environment"]["CELERITY_BROKER_URL"]
    )
    for name in ("worker", "coordinator"):
        check = services[name]["healthcheck"]["test"]
        assert_tools_command(shlex.split(check[1]))


# --- Dockerfile ---------------------------------------------------------------------------------


def dockerfile() -> list[dict[str, Any]]:
    from dockerfile_parse import DockerfileParser

    parser = DockerfileParser(path=str(DEPLOY / "Dockerfile"))
    return [item for item in parser.structure if item["instruction"] != "COMMENT"]


def test_dockerfile_installs_the_project_and_runs_celerity() -> None:
    instructions = dockerfile()
    kinds = [item["instruction"] for item in instructions]
    assert kinds[0] == "FROM" and instructions[0]["value"].startswith("python:3.")
    copied = {item["value"].split()[0] for item in instructions if item["instruction"] == "COPY"}
    for source in copied:
        assert (REPO / source).exists(), f"COPY {source}: not in the repository"
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages = {name.rstrip("*") for name in project["tool"]["setuptools"]["packages"]["find"]
                ["include"]}
    assert packages <= copied, packages - copied
    installs = [item["value"] for item in instructions
                if item["instruction"] == "RUN" and "pip install" in item["value"]]
    assert installs, "the Dockerfile installs nothing"
    (install,) = installs
    target = shlex.split(install.split("pip install", 1)[1])[-1]
    assert target.startswith("."), install
    # Every role runs from this image: it installs every extra but the test one.
    wanted = {extra for extra in target.partition("[")[2].rstrip("]").split(",") if extra}
    assert wanted == set(project["project"]["optional-dependencies"]) - {"test"}, install
    user = [item["value"] for item in instructions if item["instruction"] == "USER"]
    assert user and user[-1] not in ("root", "0")
    (cmd,) = [item["value"] for item in instructions if item["instruction"] == "CMD"]
    assert_celerity_command(json.loads(cmd))  # exec form: the worker gets SIGTERM itself


def test_dockerignore_keeps_what_the_dockerfile_copies() -> None:
    lines = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert patterns[0] == "*"
    kept = {pattern.lstrip("!").rstrip("/") for pattern in patterns if pattern.startswith("!")}
    copied = {item["value"].split()[0].rstrip("/") for item in dockerfile()
              if item["instruction"] == "COPY"}
    assert copied <= kept, copied - kept


# --- systemd ------------------------------------------------------------------------------------

UNITS = ["celerity-worker@.service", "celerity-coordinator.service", "celerity-dashboard.service"]
# Every key these units may use, by section: a misspelt key is an error here even
# where systemd-analyze is missing.
KNOWN_KEYS = {
    "Unit": {"description", "documentation", "after", "wants", "requires", "partof"},
    "Service": {
        "type", "user", "group", "environmentfile", "environment", "workingdirectory",
        "execstart", "killsignal", "killmode", "timeoutstopsec", "restart", "restartsec",
        "nonewprivileges", "privatetmp", "protectsystem", "protecthome", "readwritepaths",
    },
    "Install": {"wantedby"},
}


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.read_string((SYSTEMD / name).read_text())
    return parser


@pytest.mark.parametrize("name", UNITS)
def test_unit_has_what_it_needs(name: str) -> None:
    parsed = unit(name)
    assert set(parsed.sections()) == set(KNOWN_KEYS)
    for section, keys in KNOWN_KEYS.items():
        assert set(parsed[section]) <= keys, (section, set(parsed[section]) - keys)
    service = parsed["Service"]
    assert service["User"] != "root" and service["EnvironmentFile"] == "/etc/celerity/celerity.env"
    assert service["Restart"] in ("on-failure", "always")
    assert parsed["Install"]["WantedBy"] == "multi-user.target"
    assert_celerity_command(shlex.split(service["ExecStart"]))


def test_env_example_names_only_real_settings() -> None:
    from broker_config.settings import CeleritySettings

    lines = (SYSTEMD / "celerity.env.example").read_text().splitlines()
    names = {line.split("=", 1)[0] for line in lines if line and not line.startswith("#")}
    fields = {f"CELERITY_{name.upper()}" for name in CeleritySettings.model_fields}
    assert {"CELERITY_BROKER_URL", "CELERITY_SIGNING_KEY"} <= names <= fields


def test_systemd_analyze_verifies_the_units(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here; the unit files were still "
                    "checked by test_unit_has_what_it_needs")
    # As installed on this machine: ExecStart pointing at this checkout's celerity
    # (systemd-analyze checks that the binary exists), one worker instance.
    celerity = str(Path(sys.executable).with_name("celerity"))
    names = []
    for name in UNITS:
        text = (SYSTEMD / name).read_text().replace("/opt/celerity/.venv/bin/celerity", celerity)
        target = tmp_path / name.replace("@.", "@1.")
        target.write_text(text)
        names.append(str(target))
    result = subprocess.run([analyze, "verify", "--man=no", *names], capture_output=True,
                            text=True, timeout=120, cwd=tmp_path)
    # verify exits 0 on unknown keys and bad values, so any output is a failure too.
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), (
        result.stdout + result.stderr
    )
