"""The production-like stack's files, as the deploy tests read them (tests/unit/test_deploy.py
checks them without tools; tests/integration/test_deploy_tools.py runs the real tools on them)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DEPLOY = ROOT / "deploy"

# What an operator exports before `docker compose up` (the file requires these, with no default).
OPERATOR_ENV = {
    "POSTGRES_PASSWORD": "test-password",
    "GRAFANA_ADMIN_PASSWORD": "test-admin",
    "VECTORQL_METRICS_TOKEN": "test-metrics-token",
}

# The Prometheus names the API exposes; the dashboard shows each one.
METRICS = (
    "vectorql_requests_total",
    "vectorql_request_duration_seconds",
    "vectorql_search_duration_seconds",
    "vectorql_ingested_records_total",
    "vectorql_upsert_batch_size",
    "vectorql_reconciler_pending",
    "vectorql_backend_errors_total",
    "vectorql_loader_batch_size",
)
