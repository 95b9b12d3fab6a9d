"""The string rule (``store.text``), its place at the edge (``graph.schema.strings``), and the
schema's net for exceptions that escape an extension's hook (``graph.schema.VectorqlSchema``)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from strawberry.extensions import SchemaExtension

from graph.schema import Mutation, Query, build_schema
from graph.schema.strings import ClientStrings
from store.fields import FieldValueError, parse_datetime
from store.text import identifier_problem, shown, text_problem


@pytest.mark.parametrize(
    ("value", "text", "identifier"),
    [
        ("plain", None, None),
        ("é😀 漢字", None, None),
        ("line\nnext\ttab", None, "contains control characters"),
        ("a\x00b", "contains a NUL character", "contains control characters"),
        ("\ud800", "not valid Unicode", "not valid Unicode"),
        ("ok\udfff", "not valid Unicode", "not valid Unicode"),
        ("\x7f", None, "contains control characters"),
        ("\x85", None, "contains control characters"),
        ("\u200b\ufeff", None, None),  # format characters (Cf) are not controls (Cc)
    ],
)
def test_the_rule(value: str, text: str | None, identifier: str | None) -> None:
    for problem, expected in ((text_problem(value), text), (identifier_problem(value), identifier)):
        assert (problem is None) == (expected is None), problem
        if expected is not None:
            assert expected in (problem or "")


@given(st.text(st.characters(exclude_categories=()), max_size=12))
def test_text_is_valid_exactly_when_it_encodes_as_utf8_without_nul(value: str) -> None:
    try:
        value.encode("utf-8")
        encodes = True
    except UnicodeEncodeError:
        encodes = False
    assert (text_problem(value) is None) == (encodes and "\x00" not in value)
    shown(value).encode("utf-8")  # always encodable: raises otherwise
    if encodes:
        assert shown(value) == value


def test_a_datetime_out_of_range_in_utc_is_a_field_error_not_an_overflow() -> None:
    for value in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-00:01"):
        with pytest.raises(FieldValueError, match="out of range once in UTC"):
            parse_datetime(value)
    assert parse_datetime("0001-01-01T00:00:00-01:00") == datetime(1, 1, 1, 1, tzinfo=UTC)


def test_every_root_field_checks_its_strings() -> None:
    for root in (Query, Mutation):
        for f in root.__strawberry_definition__.fields:  # type: ignore[attr-defined]
            assert any(isinstance(e, ClientStrings) for e in f.extensions), f.python_name


class Crashing(SchemaExtension):
    """An extension with a bug: it fails in a hook, as one that assumes a valid document can."""

    def __init__(self, *, hook: str) -> None:
        self.hook = hook

    def on_validate(self) -> Iterator[None]:
        if self.hook == "validate":
            raise KeyError("fragment")
        yield

    def on_execute(self) -> Iterator[None]:
        if self.hook == "execute":
            raise ValueError("max() arg is an empty sequence")
        yield


def crashing(hook: str) -> Crashing:
    return Crashing(hook=hook)


async def test_an_extension_failing_on_an_invalid_document_answers_its_validation_errors() -> None:
    schema = build_schema(extensions=[lambda: crashing("validate")])
    result = await schema.execute("{ ...Missing }")
    assert [(e.message, (e.extensions or {}).get("code")) for e in result.errors or []] == [
        ("Unknown fragment 'Missing'.", "GRAPHQL_VALIDATION_FAILED")
    ]


@pytest.mark.parametrize("hook", ["validate", "execute"])
async def test_an_extension_failing_on_a_valid_document_is_internal_and_logged(
    hook: str, caplog: pytest.LogCaptureFixture
) -> None:
    schema = build_schema(extensions=[lambda: crashing(hook)])
    with caplog.at_level(logging.ERROR, logger="vectorql.errors"):
        result = await schema.execute("{ __typename }")
    [error] = result.errors or []
    assert error.extensions is not None
    assert error.extensions["code"] == "INTERNAL"
    assert error.message.startswith("Internal server error")  # masked
    [logged] = caplog.records
    assert logged.exc_info is not None  # with its traceback


async def test_an_empty_selection_set_is_a_syntax_error() -> None:
    result = await build_schema().execute("{ __typename collections { } }")
    [error] = result.errors or []
    assert (error.extensions or {}).get("code") == "GRAPHQL_PARSE_FAILED"
