"""The default rate limits do not throttle one busy client (issue 19: a benchmark client had to
turn them off): none with auth off, and with keys more than one API process serves."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import make_settings, running_api

REQUESTS = 400  # more than the old default burst (100) and rate (50/s) allowed


@pytest.mark.parametrize("auth", ["off", "apikey"])
async def test_the_defaults_let_one_busy_client_through(tmp_path: Path, auth: str) -> None:
    settings = make_settings(
        milvus_uri=str(tmp_path / "milvus.db"),
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'vectorql.db'}",
        auth=auth,
    )
    async with running_api(settings) as api:
        headers = {}
        if auth == "apikey":
            key = await api.store.keys.create(scope="read")
            headers = {"Authorization": f"Bearer {key.secret}"}
        for _ in range(REQUESTS):
            response = await api.client.post(
                "/graphql", json={"query": "{ __typename }"}, headers=headers
            )
            assert response.status_code == 200, response.text
            assert not response.json().get("errors")
