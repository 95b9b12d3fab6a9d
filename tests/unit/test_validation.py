"""Collection-definition validation and the error mapping, without I/O."""

from __future__ import annotations

import pytest
from graphql import GraphQLError, GraphQLSyntaxError, Source

from graph.schema.errors import map_error
from store.errors import Conflict, InvalidInput, NotFound, Problem, Unavailable
from store.records import CollectionSpec, FieldSpec, FieldType, IndexSpec, IndexType
from store.validation import validate_collection, validate_index


def test_defaults_are_filled_in() -> None:
    spec = validate_collection(CollectionSpec(name="docs", dimension=384))
    assert spec.index == IndexSpec(IndexType.HNSW, {"M": 16, "efConstruction": 256})


def test_every_problem_is_reported_at_once() -> None:
    spec = CollectionSpec(
        name="1x",
        dimension=1,
        fields=(FieldSpec("id", FieldType.INT), FieldSpec("a", FieldType.INT),
                FieldSpec("a", FieldType.STRING)),
    )  # fmt: skip
    with pytest.raises(InvalidInput) as caught:
        validate_collection(spec)
    messages = [p.message for p in caught.value.problems]
    assert len(messages) == 4, messages
    assert "4 invalid collection settings" in caught.value.message


@pytest.mark.parametrize("word", ["and", "like", "IN", "array_contains"])
def test_milvus_keywords_are_not_field_names(word: str) -> None:
    with pytest.raises(InvalidInput, match="reserved word"):
        validate_collection(
            CollectionSpec(name="c", dimension=4, fields=(FieldSpec(word, FieldType.INT),))
        )


def test_max_length_only_on_strings() -> None:
    with pytest.raises(InvalidInput, match="maxLength applies to STRING"):
        validate_collection(
            CollectionSpec(
                name="c", dimension=4, fields=(FieldSpec("n", FieldType.INT, max_length=4),)
            )
        )


def test_ivf_pq_needs_m_dividing_the_dimension() -> None:
    with pytest.raises(InvalidInput, match="must divide the dimension 10"):
        validate_index(IndexSpec(IndexType.IVF_PQ, {"m": 3}), dimension=10)
    assert validate_index(IndexSpec(IndexType.IVF_PQ, {"m": 5}), dimension=10).params == {
        "nlist": 128,
        "m": 5,
        "nbits": 8,
    }


def test_unsupported_index_type_is_named() -> None:
    with pytest.raises(InvalidInput, match="IVF_PQ is not supported by this Milvus backend"):
        validate_index(
            IndexSpec(IndexType.IVF_PQ, {"m": 2}), dimension=4, supported={IndexType.HNSW}
        )


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (InvalidInput("bad"), "BAD_USER_INPUT"),
        (NotFound("x"), "NOT_FOUND"),
        (Conflict("x"), "CONFLICT"),
        (Unavailable("x"), "UNAVAILABLE"),
    ],
)
def test_store_errors_map_to_their_code(error: Exception, code: str) -> None:
    mapped = map_error(GraphQLError(str(error), original_error=error))
    assert mapped.extensions is not None
    assert mapped.extensions["code"] == code
    assert mapped.message == str(error)


def test_problems_travel_in_extensions() -> None:
    error = InvalidInput.of([Problem("too short", index=3, id="a")], what="records")
    mapped = map_error(GraphQLError(error.message, original_error=error))
    assert mapped.extensions is not None
    assert mapped.extensions["problems"] == [{"message": "too short", "index": 3, "id": "a"}]
    assert mapped.message == "record 3 id 'a': too short"


def test_unexpected_errors_are_masked(caplog: pytest.LogCaptureFixture) -> None:
    secret = RuntimeError("password=hunter2")
    mapped = map_error(GraphQLError("password=hunter2", original_error=secret))
    assert mapped.extensions is not None
    assert mapped.extensions["code"] == "INTERNAL"
    assert "hunter2" not in mapped.message
    assert mapped.extensions["errorId"] in mapped.message
    assert any("hunter2" in r.getMessage() for r in caplog.records)


def test_syntax_errors_are_parse_failures() -> None:
    error = GraphQLSyntaxError(Source("{"), 1, "Expected Name")
    assert map_error(error).extensions == {"code": "GRAPHQL_PARSE_FAILED"}
