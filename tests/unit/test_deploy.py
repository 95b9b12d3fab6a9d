"""The production-like stack (docker-compose.yml, Dockerfile, deploy/) is sound and consistent.

No Docker engine is needed: the compose file is checked against the Compose specification's JSON
schema (vendored by check-jsonschema), and against the rules of this project: every service has a
healthcheck, every dependency waits for a healthy service, the API's ``VECTORQL_*`` variables are
real settings, and the Prometheus, collector and Grafana files agree with the compose file. The
real tools (a compose CLI, ``promtool``) check the same files in
tests/integration/test_deploy_tools.py.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml
from pydantic import ValidationError

from graph.settings import ENV_PREFIX, Settings, describe_error
from graph.telemetry import check_metrics
from tests.deploy import COMPOSE_FILE, DEPLOY, METRICS, OPERATOR_ENV, ROOT

API = "vectorql"

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}, $NAME and $$ (a "$").
_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Compose's variable interpolation (values only, never keys), stricter in one way: a variable
    with neither a value nor a default is an error here, where Compose would substitute ""."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def replace(m: re.Match[str]) -> str:
        if m["escaped"]:
            return "$"
        name, op = m["name"] or m["bare"], m["op"] or ""
        current = env.get(name)
        missing = current is None or (op.startswith(":") and current == "")
        if not missing:
            assert current is not None
            return current
        if op.endswith("-"):
            return m["arg"]
        raise KeyError(f"${{{name}}} is not set: {m['arg'] or 'no default'}")

    return _VARIABLE.sub(replace, value)


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def raw_compose() -> dict[str, Any]:
    return load_yaml(COMPOSE_FILE)


@pytest.fixture(scope="module")
def compose(raw_compose: dict[str, Any]) -> dict[str, Any]:
    """The compose file as Compose sees it once the operator's variables are set."""
    return interpolate(raw_compose, OPERATOR_ENV)


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def bind_mounts(service: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(host path, container path) of each bind mount; named volumes are skipped."""
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            if volume.get("type") == "bind":
                yield volume["source"], volume["target"]
            continue
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/", "~")):
            yield source, target


def mounted_from(services: dict[str, dict[str, Any]], name: str, host_path: Path) -> str:
    """The container path where service ``name`` mounts ``host_path`` (a file or directory)."""
    for source, target in bind_mounts(services[name]):
        if (ROOT / source).resolve() == host_path.resolve():
            return target
    raise AssertionError(f"{name} does not mount {host_path.relative_to(ROOT)}")


def port_of(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1])


# --- the Compose specification --------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose_validator() -> jsonschema.Draft202012Validator:
    # The Compose specification's schema as check-jsonschema vendors it (Apache-2.0; the licence is
    # shipped beside it in check_jsonschema/builtin_schemas/vendor/licenses/LICENSE.compose-spec).
    vendored = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(vendored.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_compose_file_follows_the_compose_specification(
    compose_validator: jsonschema.Draft202012Validator, compose: dict[str, Any]
) -> None:
    errors = sorted(compose_validator.iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(
        f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors
    )


def test_the_schema_check_rejects_a_misspelt_key(
    compose_validator: jsonschema.Draft202012Validator, compose: dict[str, Any]
) -> None:
    broken = json.loads(json.dumps(compose))
    broken["services"][API]["healthcheck"]["intervall"] = "10s"
    assert not compose_validator.is_valid(broken)


def test_every_variable_the_file_requires_is_provided_or_defaulted(
    raw_compose: dict[str, Any],
) -> None:
    interpolate(raw_compose, OPERATOR_ENV)  # raises KeyError naming the variable otherwise
    without_password = {k: v for k, v in OPERATOR_ENV.items() if k != "POSTGRES_PASSWORD"}
    with pytest.raises(KeyError, match="POSTGRES_PASSWORD"):
        interpolate(raw_compose, without_password)


# --- healthchecks and start-up order --------------------------------------------------------------


def test_every_service_has_a_healthcheck(services: dict[str, dict[str, Any]]) -> None:
    missing = []
    for name, service in services.items():
        check = service.get("healthcheck") or {}
        test = check.get("test")
        if not test or check.get("disable") or test in (["NONE"], "NONE"):
            missing.append(name)
    assert not missing, f"services without a healthcheck: {missing}"


def test_every_dependency_waits_until_the_service_is_healthy(
    services: dict[str, dict[str, Any]],
) -> None:
    problems = []
    for name, service in services.items():
        depends_on = service.get("depends_on", {})
        if isinstance(depends_on, list):
            problems += [f"{name} -> {dep}: short form, no condition" for dep in depends_on]
            continue
        for dep, spec in depends_on.items():
            if dep not in services:
                problems.append(f"{name} -> {dep}: no such service")
            elif "healthcheck" not in services[dep]:
                problems.append(f"{name} -> {dep}: {dep} has no healthcheck")
            elif spec.get("condition") != "service_healthy":
                problems.append(f"{name} -> {dep}: condition {spec.get('condition')!r}")
    assert not problems


def test_the_api_starts_after_its_stores_and_the_collector(
    services: dict[str, dict[str, Any]],
) -> None:
    assert {"postgres", "milvus", "otel-collector"} <= set(services[API]["depends_on"])
    assert {"etcd", "minio"} <= set(services["milvus"]["depends_on"])


def test_published_ports_listen_on_loopback_only(services: dict[str, dict[str, Any]]) -> None:
    exposed = []
    for name, service in services.items():
        for port in service.get("ports", []):
            host_ip = port.get("host_ip") if isinstance(port, dict) else str(port).split(":")[0]
            if host_ip != "127.0.0.1":
                exposed.append(f"{name}: {port}")
    assert not exposed, f"ports published beyond 127.0.0.1: {exposed}"


# --- the API's settings ---------------------------------------------------------------------------


def test_every_vectorql_variable_is_a_setting(services: dict[str, dict[str, Any]]) -> None:
    unknown = [
        f"{name}: {var}"
        for name, service in services.items()
        for var in environment(service)
        if var.startswith(ENV_PREFIX)
        and var.removeprefix(ENV_PREFIX).lower() not in Settings.model_fields
    ]
    assert not unknown, f"not fields of graph.settings.Settings: {unknown}"


@pytest.fixture
def api_settings(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Settings:
    """Settings built the way the container builds them: from its environment alone."""
    for var in list(os.environ):
        if var.startswith(ENV_PREFIX):
            monkeypatch.delenv(var)
    for var, value in environment(services[API]).items():
        monkeypatch.setenv(var, value)
    monkeypatch.chdir(tmp_path)  # no stray .env file
    try:
        return Settings()
    except ValidationError as e:
        pytest.fail(f"the {API} service's environment: {describe_error(e)}", pytrace=False)


def test_the_api_environment_makes_valid_production_settings(api_settings: Settings) -> None:
    assert api_settings.production
    assert not api_settings.graphiql_enabled
    assert not api_settings.introspection_enabled
    assert api_settings.host == "0.0.0.0"
    assert not api_settings.loopback
    assert api_settings.auth_mode == "apikey"
    assert api_settings.port == 8000
    assert api_settings.milvus_uri == "http://milvus:19530"
    assert not api_settings.milvus_is_lite_file
    assert api_settings.database_url.startswith("postgresql+asyncpg://")
    assert api_settings.otel_exporter == "otlp-grpc"
    assert api_settings.metrics
    assert api_settings.metrics_token is not None  # production with keys: /metrics needs it
    check_metrics(api_settings)  # does not refuse to start


def test_the_api_talks_to_the_services_of_this_stack(
    api_settings: Settings, services: dict[str, dict[str, Any]]
) -> None:
    postgres = environment(services["postgres"])
    database = urlsplit(api_settings.database_url)
    assert (database.hostname, database.port) == ("postgres", 5432)
    assert database.username == postgres["POSTGRES_USER"]
    assert database.password == postgres["POSTGRES_PASSWORD"]
    assert database.path == "/" + postgres["POSTGRES_DB"]

    collector = load_yaml(DEPLOY / "otel-collector.yaml")
    otlp = collector["receivers"]["otlp"]["protocols"]
    assert api_settings.otel_endpoint is not None
    endpoint = urlsplit(api_settings.otel_endpoint)
    assert endpoint.hostname == "otel-collector"
    assert endpoint.port == port_of(otlp["grpc"]["endpoint"]) == 4317
    assert port_of(otlp["http"]["endpoint"]) == 4318


def test_the_image_serves_the_api_on_all_interfaces() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11-slim$", dockerfile, re.MULTILINE)
    assert re.search(r"pip install \.$", dockerfile, re.MULTILINE)
    cmd = re.findall(r"^CMD (\[.*\])$", dockerfile, re.MULTILINE)
    assert [json.loads(c) for c in cmd][-1:] == [
        ["vectorql", "serve", "--host", "0.0.0.0", "--port", "8000"]
    ]
    assert "!graph/" in (ROOT / ".dockerignore").read_text(encoding="utf-8")


# --- the files the services mount -----------------------------------------------------------------


def test_every_mounted_file_and_build_context_exists(services: dict[str, dict[str, Any]]) -> None:
    missing = [
        f"{name}: {source}"
        for name, service in services.items()
        for source, _ in bind_mounts(service)
        if not (ROOT / source).exists()
    ]
    for name, service in services.items():
        build = service.get("build")
        if build is not None:
            context = ROOT / (build if isinstance(build, str) else build.get("context", "."))
            dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile")
            if not (context / (dockerfile or "Dockerfile")).is_file():
                missing.append(f"{name}: build {context.relative_to(ROOT)}/{dockerfile}")
    assert not missing


def test_prometheus_scrapes_the_api_and_the_collector(services: dict[str, dict[str, Any]]) -> None:
    config_path = DEPLOY / "prometheus.yml"
    config = load_yaml(config_path)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = {
        name: [t for sc in job["static_configs"] for t in sc["targets"]]
        for name, job in jobs.items()
    }
    assert targets["vectorql"] == ["vectorql:8000"]
    assert jobs["vectorql"].get("metrics_path", "/metrics") == "/metrics"
    # The token the API requires, written by the Prometheus service's entrypoint.
    token_file = jobs["vectorql"]["authorization"]["credentials_file"]
    prometheus = services["prometheus"]
    assert "VECTORQL_METRICS_TOKEN" in environment(prometheus)
    assert token_file in " ".join(prometheus["entrypoint"])
    assert (
        environment(prometheus)["VECTORQL_METRICS_TOKEN"]
        == environment(services[API])["VECTORQL_METRICS_TOKEN"]
    )
    assert not jobs["otel-collector-exported"].get("honor_labels", False)

    collector = load_yaml(DEPLOY / "otel-collector.yaml")
    exporter_port = port_of(collector["exporters"]["prometheus"]["endpoint"])
    telemetry = collector["service"]["telemetry"]["metrics"]["readers"][0]["pull"]["exporter"]
    assert f"otel-collector:{exporter_port}" in targets["otel-collector-exported"]
    assert f"otel-collector:{telemetry['prometheus']['port']}" in targets["otel-collector"]

    # Rule files are relative to the config file: the same layout on the host and in the container.
    config_in_container = Path(mounted_from(services, "prometheus", config_path))
    for rule_file in config["rule_files"]:
        on_host = config_path.parent / rule_file
        assert on_host.is_file()
        assert mounted_from(services, "prometheus", on_host) == str(
            config_in_container.parent / rule_file
        )


def test_alerts_cover_errors_backlog_and_latency() -> None:
    rules = load_yaml(DEPLOY / "prometheus-rules.yml")
    alerts = {r["alert"]: r["expr"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    assert {
        "VectorqlHighErrorRate",
        "VectorqlReconcilerBacklogGrowing",
        "VectorqlHighP99Latency",
    } <= set(alerts)
    known = re.compile("|".join(re.escape(m) for m in METRICS))
    for name, expr in alerts.items():
        for metric in re.findall(r"\bvectorql_[a-z_]+", expr):
            assert known.match(metric), f"{name} uses an unknown metric {metric}"


def test_collector_pipelines_use_configured_components(
    services: dict[str, dict[str, Any]],
) -> None:
    config_path = DEPLOY / "otel-collector.yaml"
    config = load_yaml(config_path)
    assert mounted_from(services, "otel-collector", config_path) in " ".join(
        services["otel-collector"]["command"]
    )
    pipelines = config["service"]["pipelines"]
    assert set(pipelines) == {"traces", "metrics"}
    for pipeline in pipelines.values():
        for kind in ("receivers", "processors", "exporters"):
            assert set(pipeline.get(kind, [])) <= set(config.get(kind) or {}), kind
    assert config["service"]["extensions"] == ["health_check"]

    trace_exporter = config["exporters"][pipelines["traces"]["exporters"][0]]
    assert trace_exporter["endpoint"] == "jaeger:4317"
    assert pipelines["metrics"]["exporters"] == ["prometheus"]

    health_port = port_of(config["extensions"]["health_check"]["endpoint"])
    assert f":{health_port}/" in " ".join(services["otel-collector"]["healthcheck"]["test"])


def test_grafana_provisions_prometheus_and_the_dashboards(
    services: dict[str, dict[str, Any]],
) -> None:
    provisioning = DEPLOY / "grafana" / "provisioning"
    assert mounted_from(services, "grafana", provisioning) == "/etc/grafana/provisioning"
    datasources = [
        ds
        for f in sorted((provisioning / "datasources").glob("*.yaml"))
        for ds in load_yaml(f)["datasources"]
    ]
    assert any(
        ds["type"] == "prometheus" and ds["url"] == "http://prometheus:9090" for ds in datasources
    )
    providers = [
        p
        for f in sorted((provisioning / "dashboards").glob("*.yaml"))
        for p in load_yaml(f)["providers"]
    ]
    dashboards_in_container = mounted_from(services, "grafana", DEPLOY / "grafana" / "dashboards")
    assert [p["options"]["path"] for p in providers] == [dashboards_in_container]


def test_the_dashboard_shows_every_metric() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "vectorql.json").read_text())
    panels = [p for top in dashboard["panels"] for p in (top, *top.get("panels", []))]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    exprs = " ".join(t["expr"] for p in panels for t in p.get("targets", []))
    assert not [m for m in METRICS if m not in exprs]
