"""Filters without I/O: parsing and validation, the like pattern, Milvus rendering and escaping,
the SQL clause's shape, and the reference evaluator."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from milvus_lite.search.filter.tokens import TokenKind, tokenize
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from store.errors import InvalidInput
from store.filters import (
    And,
    Compare,
    IsNull,
    Like,
    LikePattern,
    Not,
    Op,
    Or,
    Wildcard,
    check_shape,
    evaluate,
    parse_filter,
    prefix_upper_bound,
    quote,
    to_milvus,
    to_sql,
)
from store.records import FieldSpec, FieldType
from store.sql.tables import RecordRow

T = FieldType
FIELDS = (
    FieldSpec("name", T.STRING, max_length=16),
    FieldSpec("code", T.STRING, required=True),
    FieldSpec("year", T.INT),
    FieldSpec("price", T.FLOAT),
    FieldSpec("live", T.BOOL),
    FieldSpec("at", T.DATETIME),
    FieldSpec("tags", T.STRING_LIST),
    FieldSpec("extra", T.JSON),
    FieldSpec("notes", T.STRING, filterable=False),
)
FILTERABLE = "id, name, code, year, price, live, at, tags, extra"


def parse(raw: Any, *, max_depth: int = 4, max_list: int = 5) -> Any:
    return parse_filter(raw, fields=FIELDS, max_depth=max_depth, max_list=max_list)


def problems(raw: Any, **kw: Any) -> list[tuple[str | None, str]]:
    with pytest.raises(InvalidInput) as caught:
        parse(raw, **kw)
    return [(p.path, p.message) for p in caught.value.problems]


def milvus(raw: Any, **kw: Any) -> str:
    return to_milvus(parse(raw), fields=FIELDS, **kw)


# -- parsing -----------------------------------------------------------------------------------


def test_a_filter_parses_into_a_frozen_tree_of_canonical_values() -> None:
    f = parse(
        {
            "and": [
                {"field": "at", "gte": "2024-01-01T02:00:00+02:00"},
                {
                    "or": [
                        {"field": "price", "lt": 5},
                        {"not": {"field": "year", "in": [1, 2.0, 1]}},
                    ]
                },
                {"field": "name", "like": "a\\%b%"},
                {"field": "extra", "isNull": False},
                {"field": "tags", "containsAll": ["x", "y"]},
            ]
        }
    )
    assert f == And(
        (
            Compare("at", Op.GTE, "2024-01-01T00:00:00.000000Z"),
            Or((Compare("price", Op.LT, 5.0), Not(Compare("year", Op.IN, (1, 2))))),
            Like("name", LikePattern(("a%b", Wildcard.ANY))),
            IsNull("extra", False),
            Compare("tags", Op.CONTAINS_ALL, ("x", "y")),
        )
    )
    assert isinstance(f.items[1].items[0].value, float)
    hash(f)  # frozen all the way down
    with pytest.raises(AttributeError):
        f.items = ()  # type: ignore[misc]


def test_id_is_always_filterable_with_string_operators() -> None:
    assert parse({"field": "id", "gt": "a"}) == Compare("id", Op.GT, "a")
    assert parse({"field": "id", "like": "a%"}) == Like("id", LikePattern(("a", Wildcard.ANY)))
    assert problems({"field": "id", "eq": 5}) == [
        ("where.eq", "expected a string, got an integer (id)")
    ]
    assert problems({"field": "id", "isNull": True}) == [
        (
            "where.isNull",
            "isNull does not apply to id; use eq, ne, in, notIn, gt, gte, lt, lte, like",
        )
    ]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            {"field": "nope", "eq": 1},
            [("where.field", f"unknown field 'nope'; filterable fields: {FILTERABLE}")],
        ),
        (
            {"field": "notes", "eq": "x"},
            [("where.field", f"field 'notes' is not filterable; filterable fields: {FILTERABLE}")],
        ),
        ({"field": 3, "eq": 1}, [("where.field", "expected a field name")]),
        ({"eq": 1}, [("where.field", "missing: name the field the operator applies to")]),
        (
            {"field": "year", "eq": 1, "gt": 0},
            [("where", "one operator per filter node, got eq, gt; combine nodes with and")],
        ),
        (
            {"field": "year"},
            [
                (
                    "where",
                    "no operator for field 'year'; give one of eq, ne, in, notIn, gt, gte, "
                    "lt, lte, isNull",
                )
            ],
        ),
        ({}, [("where", "empty filter: give and, or, not, or a field with one operator")]),
        (
            {"and": [{"field": "year", "eq": 1}], "field": "year", "eq": 1},
            [
                (
                    "where",
                    "a filter node is either a combinator (and, or, not) or a field with "
                    "one operator, not both",
                )
            ],
        ),
        (
            {"and": [{"field": "year", "eq": 1}], "or": [{"field": "year", "eq": 1}]},
            [("where", "one combinator per node, got and, or; nest them")],
        ),
        ({"and": []}, [("where.and", "empty list; give at least one filter")]),
        ({"or": []}, [("where.or", "empty list; give at least one filter")]),
        ({"or": {"field": "year", "eq": 1}}, [("where.or", "expected a list of filters")]),
        ({"not": None}, [("where.not", "expected a filter object, got null")]),
        ({"and": ["x"]}, [("where.and[0]", "expected a filter object")]),
        ({"field": "year", "eq": 1, "equals": 2}, [("where.equals", "unknown filter key")]),
        ({"field": "year", "in": []}, [("where.in", "empty list; give at least one value")]),
        ({"field": "year", "notIn": []}, [("where.notIn", "empty list; give at least one value")]),
        (
            {"field": "tags", "containsAny": []},
            [("where.containsAny", "empty list; give at least one value")],
        ),
        (
            {"field": "tags", "containsAll": []},
            [("where.containsAll", "empty list; give at least one value")],
        ),
        ({"field": "year", "in": 3}, [("where.in", "expected a list of values")]),
        ({"field": "year", "in": list(range(6))}, [("where.in", "more than 5 values")]),
        (
            {"or": [{"field": "year", "eq": i} for i in range(6)]},
            [("where.or", "more than 5 filters")],
        ),
        (
            {"field": "year", "eq": None},
            [("where.eq", "null is not a value to compare with; use isNull to find absent ones")],
        ),
        ({"field": "year", "isNull": "yes"}, [("where.isNull", "expected true or false")]),
        # wrong value types, per field type
        (
            {"field": "name", "eq": 1},
            [("where.eq", "expected a string, got an integer (STRING field 'name')")],
        ),
        (
            {"field": "name", "eq": "x" * 17},
            [("where.eq", "string longer than 16 bytes (STRING field 'name')")],
        ),
        (
            {"field": "year", "gt": "1"},
            [("where.gt", "expected an integer, got a string (INT field 'year')")],
        ),
        (
            {"field": "year", "gt": 1.5},
            [("where.gt", "expected an integer, got a number (INT field 'year')")],
        ),
        (
            {"field": "year", "gt": True},
            [("where.gt", "expected an integer, got a boolean (INT field 'year')")],
        ),
        (
            {"field": "year", "eq": 2**63},
            [("where.eq", "integer out of the 64-bit range (INT field 'year')")],
        ),
        (
            {"field": "price", "lt": "5"},
            [("where.lt", "expected a number, got a string (FLOAT field 'price')")],
        ),
        (
            {"field": "live", "eq": 1},
            [("where.eq", "expected a boolean, got an integer (BOOL field 'live')")],
        ),
        (
            {"field": "at", "lt": "yesterday"},
            [("where.lt", "expected an ISO 8601 date-time, got 'yesterday' (DATETIME field 'at')")],
        ),
        (
            {"field": "tags", "contains": ["a"]},
            [("where.contains", "expected a string, got a list (STRING_LIST field 'tags')")],
        ),
        (
            {"field": "year", "in": [1, "2", 3, None]},
            [
                ("where.in[1]", "expected an integer, got a string (INT field 'year')"),
                ("where.in[3]", "expected an integer, got null (INT field 'year')"),
            ],
        ),
        (
            {"field": "name", "eq": "a\x00b"},
            [("where.eq", "string contains a NUL character (STRING field 'name')")],
        ),
        (
            {"field": "name", "eq": "\ud800"},
            [
                (
                    "where.eq",
                    "string is not valid Unicode (it holds a lone surrogate) (STRING field 'name')",
                )
            ],
        ),
        # operators that do not apply to the type
        (
            {"field": "year", "like": "1%"},
            [
                (
                    "where.like",
                    "like does not apply to INT field 'year'; use eq, ne, in, notIn, gt, "
                    "gte, lt, lte, isNull",
                )
            ],
        ),
        (
            {"field": "live", "gt": True},
            [("where.gt", "gt does not apply to BOOL field 'live'; use eq, ne, isNull")],
        ),
        (
            {"field": "live", "in": [True]},
            [("where.in", "in does not apply to BOOL field 'live'; use eq, ne, isNull")],
        ),
        (
            {"field": "name", "contains": "a"},
            [
                (
                    "where.contains",
                    "contains does not apply to STRING field 'name'; use eq, ne, in, "
                    "notIn, gt, gte, lt, lte, like, isNull",
                )
            ],
        ),
        (
            {"field": "tags", "eq": ["a"]},
            [
                (
                    "where.eq",
                    "eq does not apply to STRING_LIST field 'tags'; use contains, "
                    "containsAny, containsAll, isNull",
                )
            ],
        ),
        (
            {"field": "extra", "eq": {"a": 1}},
            [("where.eq", "eq does not apply to JSON field 'extra'; use isNull")],
        ),
        (
            {"field": "at", "like": "2024%"},
            [
                (
                    "where.like",
                    "like does not apply to DATETIME field 'at'; use eq, ne, in, notIn, "
                    "gt, gte, lt, lte, isNull",
                )
            ],
        ),
        # like patterns
        ({"field": "name", "like": 5}, [("where.like", "expected a pattern string")]),
        (
            {"field": "name", "like": "a\\b"},
            [
                (
                    "where.like",
                    "a backslash must be followed by %, _ or another backslash (write \\\\ "
                    "for a literal backslash)",
                )
            ],
        ),
        (
            {"field": "name", "like": "a\\"},
            [
                (
                    "where.like",
                    "a backslash must be followed by %, _ or another backslash (write \\\\ "
                    "for a literal backslash)",
                )
            ],
        ),
        ({"field": "name", "like": "%" * 33}, [("where.like", "pattern longer than 32 bytes")]),
    ],
)
def test_each_invalid_filter_is_rejected_with_its_path(
    raw: Any, expected: list[tuple[str, str]]
) -> None:
    assert problems(raw) == expected


def test_nesting_deeper_than_the_limit_is_rejected_where_it_happens() -> None:
    leaf = {"field": "year", "eq": 1}
    assert parse({"not": {"not": {"not": leaf}}}, max_depth=4) == Not(
        Not(Not(Compare("year", Op.EQ, 1)))
    )
    assert problems({"and": [leaf, {"not": {"not": {"not": leaf}}}]}, max_depth=4) == [
        ("where.and[1].not.not.not", "filter nested deeper than 4 levels")
    ]
    assert problems({"not": leaf}, max_depth=1) == [
        ("where.not", "filter nested deeper than 1 levels")
    ]


def shape_problems(
    raw: Any, *, max_depth: int = 4, max_list: int = 5
) -> list[tuple[str | None, str]]:
    with pytest.raises(InvalidInput) as caught:
        check_shape(raw, max_depth=max_depth, max_list=max_list)
    return [(p.path, p.message) for p in caught.value.problems]


LEAF = {"field": "year", "eq": 1}


@pytest.mark.parametrize(
    "raw",
    [
        {"and": [LEAF, {"not": {"not": {"not": LEAF}}}]},
        {"not": {"or": [LEAF] * 6}},
        {"field": "year", "in": list(range(6))},
        {"field": "tags", "containsAny": ["a"] * 6},
        {"field": "tags", "containsAll": ["a"] * 6},
        {"field": "year", "notIn": list(range(6))},
        {
            "and": [
                {"or": [LEAF] * 6},
                {"not": {"field": "year", "in": list(range(9))}},
                {"not": {"not": {"and": [LEAF, LEAF]}}},
            ]
        },
    ],
)
def test_the_shape_check_reports_the_limits_as_the_parser_does(raw: Any) -> None:
    assert shape_problems(raw) == problems(raw)


@pytest.mark.parametrize(
    "raw",
    [
        {"field": "nope", "eq": 1},  # unknown field: needs the schema
        {"field": "year", "gt": "x"},  # wrong type: needs the schema
        {"and": [LEAF, {"not": {"not": LEAF}}]},  # exactly at the depth limit
        {"or": [LEAF] * 5, "field": "year"},  # malformed, but within the limits
        {"field": "year", "in": list(range(5))},
        {"field": "name", "eq": ["a"] * 50},  # not a list operator: the parser's to refuse
        {"and": "x"},
        {"not": None},
    ],
)
def test_the_shape_check_needs_no_schema_and_leaves_the_rest_to_the_parser(raw: Any) -> None:
    check_shape(raw, max_depth=4, max_list=5)


def test_the_shape_check_is_not_recursive() -> None:
    raw: dict[str, Any] = LEAF
    for _ in range(10_000):
        raw = {"not": raw}
    assert shape_problems(raw) == [("where" + ".not" * 4, "filter nested deeper than 4 levels")]
    with pytest.raises(ValueError, match="at least 1"):
        check_shape(LEAF, max_depth=1, max_list=0)


def test_every_problem_is_reported_at_once_with_its_path() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse(
            {
                "and": [
                    {"field": "nope", "eq": 1},
                    {"or": [{"field": "year", "gt": "x"}, {"field": "live", "like": "t%"}]},
                    {"not": {"field": "name", "in": []}},
                ]
            }
        )
    error = caught.value
    assert [p.path for p in error.problems] == [
        "where.and[0].field",
        "where.and[1].or[0].gt",
        "where.and[1].or[1].like",
        "where.and[2].not.in",
    ]
    assert error.message.startswith("4 invalid filter: where.and[0].field: unknown field 'nope'")
    assert error.code == "BAD_USER_INPUT"
    assert error.extensions["problems"][1] == {
        "message": "expected an integer, got a string (INT field 'year')",
        "path": "where.and[1].or[0].gt",
    }


def test_the_root_path_can_be_named() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_filter(
            {"field": "x", "eq": 1}, fields=FIELDS, max_depth=2, max_list=2, path="delete.where"
        )
    assert caught.value.problems[0].path == "delete.where.field"


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        parse_filter({"field": "id", "eq": "a"}, fields=FIELDS, max_depth=0, max_list=1)


# -- like patterns -----------------------------------------------------------------------------

ANY, ONE = Wildcard.ANY, Wildcard.ONE


@pytest.mark.parametrize(
    ("text", "parts", "exact", "prefix"),
    [
        ("", (), "", None),
        ("abc", ("abc",), "abc", None),
        ("abc%", ("abc", ANY), None, "abc"),
        ("%", (ANY,), None, ""),
        ("%%%", (ANY,), None, ""),
        ("a%%b", ("a", ANY, "b"), None, None),
        ("a_c", ("a", ONE, "c"), None, None),
        ("__", (ONE, ONE), None, None),
        ("a\\%b", ("a%b",), "a%b", None),
        ("a\\_%", ("a_", ANY), None, "a_"),
        ("\\\\%", ("\\", ANY), None, "\\"),
        ("%a", (ANY, "a"), None, None),
        ("a%_", ("a", ANY, ONE), None, None),
    ],
)
def test_like_patterns_parse_into_literals_and_wildcards(
    text: str, parts: tuple[Any, ...], exact: str | None, prefix: str | None
) -> None:
    pattern = LikePattern.parse(text)
    assert pattern.parts == parts
    assert pattern.exact == exact
    assert pattern.prefix == prefix


@pytest.mark.parametrize(
    ("pattern", "value", "matches"),
    [
        ("abc", "abc", True),
        ("abc", "ABC", False),
        ("abc", "abcd", False),
        ("a%", "a", True),
        ("a%", "ba", False),
        ("%a", "ba", True),
        ("%b%", "abc", True),
        ("a%b%b", "abb", True),
        ("a%b%b", "ab", False),
        ("ab%b", "ab", False),
        ("_", "é", True),
        ("_", "😀", True),
        ("_", "", False),
        ("__", "😀", False),
        ("a_c", "a\nc", True),
        ("%\n%", "x\ny", True),
        ("a\\%", "a%", True),
        ("a\\%", "ab", False),
        ("a\\_", "ab", False),
        ("%\\\\", "x\\", True),
        ("%a_a%", "xxaba", True),
        ("%a_a%", "aab", False),
        ("", "", True),
        ("", "a", False),
        ("%", "", True),
    ],
)
def test_like_matches_the_whole_value_case_sensitively(
    pattern: str, value: str, matches: bool
) -> None:
    assert LikePattern.parse(pattern).matches(value) is matches


def _like_regex(pattern: LikePattern) -> re.Pattern[str]:
    out = []
    for part in pattern.parts:
        out.append(".*" if part is ANY else "." if part is ONE else re.escape(str(part)))
    return re.compile("".join(out), re.DOTALL)


@settings(max_examples=200, derandomize=True)
@given(
    pattern=st.lists(st.sampled_from(["a", "b", "%", "_", "\\%", "\\_", "\\\\"]), max_size=6).map(
        "".join
    ),
    value=st.text(alphabet="ab%_\\", max_size=8),
)
def test_like_agrees_with_a_regex_reference(pattern: str, value: str) -> None:
    parsed = LikePattern.parse(pattern)
    assert parsed.matches(value) is bool(_like_regex(parsed).fullmatch(value))


def test_like_matching_is_linear_without_backtracking() -> None:
    pattern = LikePattern.parse("%a" * 30 + "%b")
    assert pattern.matches("a" * 2000) is False  # a backtracking regex would not finish


# -- Milvus ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # The _absent guard only where the stored zero would pass the test
        ({"field": "year", "eq": 5}, "(year == 5)"),
        ({"field": "year", "eq": 0}, '(not array_contains(_absent, "year") and year == 0)'),
        ({"field": "year", "ne": -5}, '(not array_contains(_absent, "year") and year != -5)'),
        ({"field": "price", "gt": 1}, "(price > 1.0)"),
        ({"field": "price", "gte": 1e300}, "(price >= 1e+300)"),
        ({"field": "price", "lte": -0.1}, "(price <= -0.1)"),
        ({"field": "price", "lte": 0}, '(not array_contains(_absent, "price") and price <= 0.0)'),
        ({"field": "live", "eq": True}, "(live == true)"),
        ({"field": "live", "eq": False}, '(not array_contains(_absent, "live") and live == false)'),
        ({"field": "live", "ne": False}, "(live != false)"),
        (
            {"field": "at", "lt": "1970-01-01T00:00:01+00:00"},
            '(not array_contains(_absent, "at") and at < 1000000)',
        ),
        ({"field": "name", "in": ["a", "b"]}, '(name in ["a", "b"])'),
        (
            {"field": "name", "in": ["a", ""]},
            '(not array_contains(_absent, "name") and name in ["a", ""])',
        ),
        (
            {"field": "year", "notIn": [1, 2]},
            '(not array_contains(_absent, "year") and not (year in [1, 2]))',
        ),
        ({"field": "tags", "contains": "x"}, '(array_contains(tags, "x"))'),
        ({"field": "tags", "containsAny": ["x", "y"]}, '(array_contains_any(tags, ["x", "y"]))'),
        ({"field": "tags", "containsAll": ["x"]}, '(array_contains_all(tags, ["x"]))'),
        ({"field": "extra", "isNull": True}, 'array_contains(_absent, "extra")'),
        ({"field": "extra", "isNull": False}, '(not array_contains(_absent, "extra"))'),
        # required fields and id are never absent: no guard, constant isNull
        ({"field": "code", "eq": "x"}, '(code == "x")'),
        ({"field": "code", "isNull": True}, '(id < "")'),
        ({"field": "code", "isNull": False}, '(id >= "")'),
        ({"field": "id", "gte": "k"}, '(id >= "k")'),
        # like: exact -> ==, prefix -> range, the rest -> like
        ({"field": "name", "like": "a\\%b"}, '(name == "a%b")'),
        ({"field": "name", "like": "ab%"}, '(name >= "ab" and name < "ac")'),
        ({"field": "name", "like": "%"}, '(not array_contains(_absent, "name") and name >= "")'),
        ({"field": "code", "like": 'a\\_"%'}, '(code >= "a_\\"" and code < "a_#")'),
        ({"field": "id", "like": "%a_b%"}, '(id like "%a_b%")'),
        # combinators
        (
            {
                "and": [
                    {"field": "id", "eq": "a"},
                    {"or": [{"field": "code", "eq": "b"}, {"not": {"field": "id", "eq": "c"}}]},
                ]
            },
            '((id == "a") and ((code == "b") or (not (id == "c"))))',
        ),
    ],
)
def test_milvus_expressions(raw: Any, expected: str) -> None:
    assert milvus(raw) == expected


@pytest.mark.parametrize(
    ("op", "value", "expected", "guarded"),
    [
        ("eq", -(2**63), "year < -9223372036854775807", False),
        ("lte", -(2**63), "year < -9223372036854775807", False),
        ("ne", -(2**63), "year >= -9223372036854775807", True),
        ("gt", -(2**63), "year >= -9223372036854775807", True),
        ("gte", -(2**63), "year <= 9223372036854775807", True),
        ("lt", -(2**63), "year > 9223372036854775807", False),
        ("in", [-(2**63)], "year < -9223372036854775807", False),
        ("in", [1, -(2**63)], "(year in [1] or year < -9223372036854775807)", False),
        ("notIn", [-(2**63)], "year >= -9223372036854775807", True),
        ("notIn", [-(2**63), 1], "(not (year in [1]) and year >= -9223372036854775807)", True),
        ("eq", 2**63 - 1, "year == 9223372036854775807", False),
    ],
)
def test_the_least_int64_is_never_written_as_a_milvus_literal(
    op: str, value: Any, expected: str, guarded: bool
) -> None:
    # Milvus parses -N as -(N), and 2**63 overflows its int64 parser. The absent guard is there
    # exactly when an absent value (stored as 0) would pass the test.
    guard = 'not array_contains(_absent, "year") and ' if guarded else ""
    assert milvus({"field": "year", op: value}) == f"({guard}{expected})"


@pytest.mark.parametrize("pattern", ["%a", "a%b", "a_", "_", "%a%"])
def test_prefix_only_milvus_refuses_other_patterns_naming_their_path(pattern: str) -> None:
    f = parse({"and": [{"field": "id", "eq": "x"}, {"not": {"field": "name", "like": pattern}}]})
    with pytest.raises(InvalidInput) as caught:
        to_milvus(f, fields=FIELDS, like="prefix")
    assert [(p.path, p.message) for p in caught.value.problems] == [
        (
            "where.and[1].not.like",
            "this Milvus backend only supports exact and prefix patterns ('abc' or 'abc%') in like",
        )
    ]
    assert to_milvus(f, fields=FIELDS, like="full")  # fine where LIKE is complete


def test_prefix_only_milvus_still_runs_exact_and_prefix_patterns() -> None:
    assert milvus({"field": "code", "like": "a\\_\\%"}, like="prefix") == '(code == "a_%")'
    assert (
        milvus({"field": "code", "like": "a\\_%"}, like="prefix")
        == '(code >= "a_" and code < "a`")'
    )


@pytest.mark.parametrize("pattern", ["%a\\%", "%a\\_%", "%\\\\%", "_\\%"])
def test_milvus_refuses_escaped_characters_inside_general_patterns(pattern: str) -> None:
    # Milvus Lite reads LIKE escapes in some expressions and not in others: never rely on them.
    with pytest.raises(InvalidInput, match=r"literal %, _ or backslash only in exact or prefix"):
        milvus({"field": "name", "like": pattern})


@pytest.mark.parametrize("pattern", ["%b_", "a%_", "%a\n", "_"])
def test_milvus_lite_refuses_patterns_its_regex_cannot_run_exactly(pattern: str) -> None:
    # Milvus Lite's LIKE regex ends in ``$``, which also matches before a final newline.
    f = parse({"field": "name", "like": pattern}, max_list=10)
    with pytest.raises(InvalidInput, match=r"Milvus Lite cannot run a like pattern"):
        to_milvus(f, fields=FIELDS, like="lite")
    assert "like" in to_milvus(f, fields=FIELDS, like="full")


def test_milvus_like_ending_in_a_literal_excludes_values_ending_in_a_newline() -> None:
    f = parse({"field": "name", "like": "%a"}, max_list=10)
    for like in ("full", "lite"):
        assert to_milvus(f, fields=FIELDS, like=like).endswith(
            '(name like "%a" and not name like "%\\n"))'
        )


def test_field_names_come_from_the_schema_and_must_be_identifiers() -> None:
    f = parse({"field": "name", "eq": "x"})
    with pytest.raises(ValueError, match="do not declare"):
        to_milvus(f, fields=[FieldSpec("other", T.STRING)])
    with pytest.raises(ValueError, match="not a Milvus identifier"):
        to_milvus(Compare("a b", Op.EQ, "x"), fields=[FieldSpec("a b", T.STRING)])
    with pytest.raises(ValueError, match="like must be"):
        to_milvus(f, fields=FIELDS, like="regex")  # type: ignore[arg-type]


HOSTILE = [
    'a" or id != "',
    "') or true or ('",
    '" || true || "',
    "\\",
    '\\"',
    '\\" or 1 == 1 or \\"',
    "new\nline",
    "cr\r\n",
    "tab\t",
    "\u201csmart\u201d \u2018quotes\u2019",
    "ctl\x01\x07\x0b\x0c\x1b\x7f",
    "line\u2028para\u2029",
    "\U0001f600 \u00e9 \u4e2d",
    "{p0}",
    "$meta",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_quoted_strings_read_back_as_one_string_literal_in_milvus_lites_tokenizer(
    value: str,
) -> None:
    tokens = tokenize(f"name == {quote(value)}")
    assert [t.kind for t in tokens] == [
        TokenKind.IDENT,
        TokenKind.EQ,
        TokenKind.STRING,
        TokenKind.EOF,
    ]
    assert tokens[2].value == value


def test_quoting_escapes_only_what_both_milvus_parsers_read_the_same_way() -> None:
    assert quote('a"b\\c\nd\re\tf') == '"a\\"b\\\\c\\nd\\re\\tf"'
    assert quote("\x01\u2028\u201c") == '"\x01\u2028\u201c"'
    with pytest.raises(ValueError, match="NUL"):
        quote("\x00")


@settings(max_examples=200, derandomize=True)
@given(st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00")))
def test_any_string_survives_quoting(value: str) -> None:
    tokens = tokenize(quote(value))
    assert len(tokens) == 2
    assert tokens[0].kind is TokenKind.STRING
    assert tokens[0].value == value


@pytest.mark.parametrize(
    ("prefix", "upper"),
    [
        ("ab", "ac"),
        ("a\U0010ffff", "b"),
        ("\U0010ffff\U0010ffff", None),
        ("", None),
        ("a\ud7ff", "a\ue000"),
        ('a"', "a#"),
        ("a\t", "a\n"),
    ],
)
def test_prefix_upper_bound(prefix: str, upper: str | None) -> None:
    assert prefix_upper_bound(prefix) == upper


@settings(max_examples=200, derandomize=True)
@given(
    prefix=st.text(st.sampled_from(["a", "b", "\U0010ffff", "\ud7ff", "\ue000"]), max_size=3),
    value=st.text(st.sampled_from(["a", "b", "\U0010ffff", "\ud7ff", "\ue000"]), max_size=4),
)
def test_a_prefix_range_holds_exactly_the_strings_with_that_prefix(prefix: str, value: str) -> None:
    upper = prefix_upper_bound(prefix)
    in_range = prefix <= value and (upper is None or value < upper)
    assert in_range is value.startswith(prefix)
    # Milvus compares UTF-8 bytes: the same order.
    assert (prefix.encode() <= value.encode()) is (prefix <= value)


# -- SQL ---------------------------------------------------------------------------------------


def _sql(raw: Any, dialect: Any) -> tuple[str, dict[str, Any]]:
    clause = to_sql(parse(raw), fields=FIELDS, dialect=dialect.name)
    compiled = select(RecordRow.id).where(clause).compile(dialect=dialect)
    return str(compiled), dict(compiled.params)


@pytest.mark.parametrize(
    "dialect", [sqlite.dialect(), postgresql.asyncpg.dialect()], ids=["sqlite", "postgresql"]
)
@pytest.mark.parametrize("value", HOSTILE)
def test_sql_binds_every_value_and_field_name(dialect: Any, value: str) -> None:
    text, params = _sql(
        {"or": [{"field": "code", "eq": value}, {"field": "tags", "contains": value}]},
        dialect,
    )
    assert value not in text
    assert "code" not in text
    assert value in params.values()


def test_sql_per_dialect() -> None:
    lite, _ = _sql(
        {"and": [{"field": "name", "like": "a_%"}, {"field": "live", "eq": True}]}, sqlite.dialect()
    )
    assert "GLOB" in lite  # SQLite's LIKE ignores ASCII case
    assert "json_type(vq_record.metadata" in lite
    pg, params = _sql(
        {
            "and": [
                {"field": "name", "gt": "a"},
                {"field": "name", "like": "a\\%_%"},
                {"field": "tags", "containsAny": ["x"]},
            ]
        },
        postgresql.asyncpg.dialect(),
    )
    assert 'COLLATE "C"' in pg
    assert "ESCAPE '\\'" in pg
    assert "?|" in pg
    assert "a\\%_%" in params.values()
    with pytest.raises(ValueError, match="no filter compiler"):
        to_sql(parse({"field": "id", "eq": "a"}), fields=FIELDS, dialect="mysql")


def test_every_sql_leaf_is_guarded_so_not_stays_two_valued() -> None:
    text, _ = _sql({"not": {"field": "year", "ne": 5}}, sqlite.dialect())
    assert "NOT (json_extract(vq_record.metadata, ?) IS NOT NULL AND" in text


# -- the reference evaluator --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "metadata", "expected"),
    [
        ({"field": "year", "ne": 5}, {}, False),
        ({"field": "year", "ne": 5}, {"year": None}, False),
        ({"field": "year", "notIn": [5]}, {}, False),
        ({"not": {"field": "year", "eq": 5}}, {}, True),
        ({"not": {"field": "year", "ne": 5}}, {}, True),
        ({"field": "year", "isNull": True}, {"year": None}, True),
        ({"field": "year", "isNull": False}, {"year": 0}, True),
        ({"field": "tags", "contains": "a"}, {"tags": []}, False),
        ({"field": "tags", "isNull": True}, {"tags": []}, False),
        ({"field": "extra", "isNull": False}, {"extra": False}, True),
        (
            {"field": "at", "gt": "2024-01-01T00:00:00+01:00"},
            {"at": "2023-12-31T23:30:00.000000Z"},
            True,
        ),
        ({"field": "id", "like": "r_"}, {}, True),
        ({"and": [{"field": "id", "eq": "r1"}, {"field": "year", "gte": 1}]}, {"year": 1}, True),
        ({"or": [{"field": "id", "eq": "x"}, {"field": "year", "lt": 1}]}, {"year": 1}, False),
    ],
)
def test_evaluate_is_the_reference_semantics(
    raw: Any, metadata: dict[str, Any], expected: bool
) -> None:
    assert evaluate(parse(raw), id="r1", metadata=metadata) is expected


def test_milvus_long_and_or_lists_are_nested_in_short_runs() -> None:
    # Milvus 2.3 refuses a flat chain of about 60 terms; nested runs of 16 run at 1,000.
    f = parse({"or": [{"field": "id", "eq": f"r{i}"} for i in range(100)]}, max_list=1000)
    expr = to_milvus(f, fields=FIELDS)
    assert expr.count("id ==") == 100
    depth = max_depth = 0
    for ch in expr:
        depth += ch == "("
        depth -= ch == ")"
        max_depth = max(max_depth, depth)
    assert depth == 0
    assert max_depth >= 3  # runs of runs
    for run in expr.split("("):
        assert run.count(" or ") <= 16


def test_negative_zero_is_stored_and_filtered_as_zero() -> None:
    # Milvus Lite's Arrow filters hash -0.0 and 0.0 apart (0.0 in [-0.0] is false there).
    import math

    from store.fields import canonical

    assert math.copysign(1.0, canonical(FieldType.FLOAT, -0.0)) == 1.0
    assert math.copysign(1.0, canonical(FieldType.FLOAT, 0)) == 1.0
    assert milvus({"field": "price", "in": [-0.0]}) == (
        '(not array_contains(_absent, "price") and price in [0.0])'
    )
