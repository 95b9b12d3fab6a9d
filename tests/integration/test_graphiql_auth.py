"""The served GraphiQL page asks for an API key exactly when the server requires one."""

from __future__ import annotations

from pathlib import Path

import pytest

from graph.http.first_session import first_session
from graph.http.graphiql import KEY_HEADERS, NO_HEADERS
from tests.conftest import make_settings, running_api
from tests.unit.test_graphiql import _config


@pytest.mark.parametrize(("auth", "keys"), [("off", False), ("apikey", True)])
async def test_the_page_follows_the_auth_mode(auth: str, keys: bool, tmp_path: Path) -> None:
    settings = make_settings(
        auth=auth,
        milvus_uri=str(tmp_path / "milvus.db"),
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'vectorql.db'}",
    )
    async with running_api(settings) as api:
        page = await api.client.get("/graphql", headers={"accept": "text/html"})
    assert page.status_code == 200, page.text
    config = _config(page.text)
    assert config["defaultHeaders"] == (KEY_HEADERS if keys else NO_HEADERS)
    assert ("Bearer" in str(config["defaultQuery"])) is keys
    assert config["tabs"] == [{"query": e.query, "variables": e.variables} for e in first_session()]
