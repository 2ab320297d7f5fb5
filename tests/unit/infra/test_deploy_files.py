"""Deployment files (infra/deploy) checked against the code they start.

No Docker engine or Kubernetes API runs here, so nothing is deployed: these tests
hold the files to the CLI and settings (every command, flag and KINFER_ variable
exists), render the kustomization, and keep the Dockerfile's copies real.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main
import yaml

from kinfer.infra.cli import app
from kinfer.infra.env_vars import env_names
from kinfer.infra.settings import KinferSettings

DEPLOY = Path(__file__).resolve().parents[3] / "infra" / "deploy"
K8S = DEPLOY / "k8s"


def documents() -> Iterator[tuple[str, dict[str, Any]]]:
    yield "compose.yaml", yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            yield path.name, doc


def containers() -> Iterator[tuple[str, list[str], dict[str, str]]]:
    """(where, kinfer argv, literal env) of every kinfer container."""
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    for name, svc in compose["services"].items():
        if svc.get("image", "").startswith("kinfer"):
            yield f"compose:{name}", svc["command"], svc.get("environment", {})
    for where, doc in documents():
        spec = doc.get("spec", {}).get("template", {}).get("spec", {})
        for c in spec.get("containers", []):
            if c["image"].startswith("kinfer"):
                yield (
                    f"{where}:{c['name']}",
                    c["args"],
                    {e["name"]: e.get("value", "") for e in c.get("env", [])},
                )


def kinfer_env_names() -> set[str]:
    names: set[str] = set()
    for _, doc in documents():
        names |= set(re.findall(r"\bKINFER_[A-Z0-9_]+", yaml.safe_dump(doc)))
    names |= set(re.findall(r"\bKINFER_[A-Z0-9_]+", (DEPLOY / "Dockerfile").read_text()))
    return names


def test_every_kinfer_variable_is_a_setting() -> None:
    known = env_names()
    used = kinfer_env_names()
    assert used, "the files set no KINFER_ variable at all"
    assert used <= known, f"not settings: {sorted(used - known)}"


def test_every_command_and_flag_exists() -> None:
    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    seen = set()
    for where, argv, _ in containers():
        command = commands.get(argv[0])
        assert command is not None, f"{where}: no `kinfer {argv[0]}`"
        flags = {opt for param in command.params for opt in param.opts}
        for arg in argv[1:]:
            if arg.startswith("--"):
                assert arg in flags, f"{where}: `kinfer {argv[0]}` has no {arg}"
        seen.add(argv[0])
    assert {"topics", "admission", "worker", "pool", "gateway"} <= seen


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> KinferSettings:
    """The settings a container with exactly this environment gets."""
    for key in [k for k in os.environ if k.startswith("KINFER_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, str(value))
    return KinferSettings()


def test_the_settings_in_the_files_are_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    config = next(doc for _, doc in documents() if doc.get("kind") == "ConfigMap")
    settings = settings_from(config["data"], monkeypatch)
    assert settings.external_kafka and settings.topic_replication == 3
    assert list(settings.region_weights) == ["us-west", "eu-central", "ap-southeast"]
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    gateway_env = compose["services"]["gateway"]["environment"]
    settings = settings_from(gateway_env, monkeypatch)
    assert settings.external_kafka and settings.external_redis and "demo" in settings.gateway.api_keys


def test_the_dockerfile_copies_what_exists() -> None:
    root = DEPLOY.parents[1]
    for line in (DEPLOY / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (root / source).exists(), line


def test_the_kustomization_names_every_manifest_and_renders() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    assert listed == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the render check needs it (the checks above ran)")
    rendered = subprocess.run([kubectl, "kustomize", str(K8S)], capture_output=True, text=True, check=True)
    kinds = [doc["kind"] for doc in yaml.safe_load_all(rendered.stdout) if doc]
    assert sorted(kinds) == sorted(
        [
            "Namespace",
            "ConfigMap",
            "Secret",
            "Job",
            "Deployment",
            "Deployment",
            "Deployment",
            "Deployment",
            "Deployment",
            "Service",
        ]
    )
    assert all(
        doc["metadata"].get("namespace") in ("kinfer", None) for doc in yaml.safe_load_all(rendered.stdout)
    )


def test_the_regions_overlay_mirrors_what_the_local_stack_mirrors() -> None:
    from kinfer.infra.stack.mirror import Flow
    from kinfer.schemas import TopicNames

    regions = K8S.parent / "k8s-regions"
    mirror = yaml.safe_load((regions / "mirror-maker-2.yaml").read_text())
    target = mirror["spec"]["connectCluster"]
    aliases = {c["alias"] for c in mirror["spec"]["clusters"]}
    flows = [(m["sourceCluster"], m["targetCluster"], m["topicsPattern"]) for m in mirror["spec"]["mirrors"]]
    assert {s for s, _, _ in flows} == aliases - {target} and {t for _, t, _ in flows} == {target}
    for source, _, pattern in flows:
        assert pattern == "|".join(Flow(source, target).topics(TopicNames("kinfer")))
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the render check needs it (the checks above ran)")
    rendered = subprocess.run(
        [kubectl, "kustomize", str(regions)], capture_output=True, text=True, check=True
    )
    docs = [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]
    config = next(d for d in docs if d["kind"] == "ConfigMap")["data"]
    assert config["KINFER_REGION"] == target and target in yaml.safe_load(config["KINFER_CLUSTERS"])
    args = [
        c["args"]
        for d in docs
        if d["kind"] == "Deployment"
        for c in d["spec"]["template"]["spec"]["containers"]
    ]
    assert all(a[a.index("--region") + 1] == target for a in args if "--region" in a), args
