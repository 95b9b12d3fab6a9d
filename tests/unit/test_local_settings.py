"""Which Milvus a ``VECTORQL_MILVUS_URI`` names: ``local`` (the default) and ``local:DIR`` mean
the managed engine of a data directory; files and server URIs mean themselves."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from store import local_data_dir
from tests.conftest import make_settings


def test_the_default_is_the_managed_engine_in_the_data_directory() -> None:
    settings = make_settings()
    assert settings.milvus_uri == "local"
    assert settings.milvus_local_dir == Path("data")
    assert not settings.milvus_is_lite_file


@pytest.mark.parametrize(
    ("uri", "directory"),
    [
        ("local", Path("data")),
        ("local:/srv/vectorql", Path("/srv/vectorql")),
        ("local:state", Path("state")),
        ("./data/milvus.db", None),
        ("http://127.0.0.1:19530", None),
        ("local:", None),
        ("localhost:19530", None),
    ],
)
def test_local_uris_name_a_data_directory(uri: str, directory: Path | None) -> None:
    assert local_data_dir(uri) == directory


@pytest.mark.parametrize("uri", ["local:/srv/vectorql", "./x.db", "http://milvus:19530"])
def test_explicit_uris_are_taken_as_given(uri: str) -> None:
    assert make_settings(milvus_uri=uri).milvus_uri == uri


@pytest.mark.parametrize("uri", ["local:", "locale", "milvus:19530"])
def test_other_values_are_refused_with_what_is_accepted(uri: str) -> None:
    with pytest.raises(ValidationError, match=r"local \(or local:DIR\)"):
        make_settings(milvus_uri=uri)
