"""GraphiQL's tabs and the README's first session are one source: graph/static/first-session.toml.

The README section "A first session in GraphiQL" must show each example of that file, in order, as
a ```graphql block (the operation, text for text) followed by a ```json block (its variables) when
it has any, and nothing else. ``tests/integration/test_readme_examples.py`` runs them.
"""

from __future__ import annotations

import json

import pytest

from graph.http.first_session import Example, first_session
from tests.readme import FIRST_SESSION, README, graphql_examples, section


def as_markdown(examples: tuple[Example, ...]) -> str:
    """The README's blocks for ``examples`` (paste this into the section after editing the file)."""
    parts = []
    for example in examples:
        parts.append(f"```graphql\n{example.query}```\n")
        if example.variables is not None:
            parts.append(f"```json\n{example.variables}```\n")
    return "\n".join(parts)


def test_the_readme_first_session_is_the_graphiql_tabs() -> None:
    shown = graphql_examples(section(README.read_text(), FIRST_SESSION))
    expected = first_session()
    assert [(e.query, e.variables_text) for e in shown] == [
        (e.query, e.variables) for e in expected
    ], (
        "README's first session differs from graph/static/first-session.toml; its blocks:\n\n"
        + as_markdown(expected)
    )


def test_the_first_session_creates_upserts_searches_by_vector_and_text_and_lists() -> None:
    examples = first_session()
    assert [e.name for e in examples] == [
        "CreateCollection",
        "UpsertRecords",
        "Search",
        "CreateNotes",
        "UpsertNotes",
        "SearchByText",
        "Collections",
    ]
    create, upsert, search, create_notes, upsert_notes, by_text, _ = examples
    assert "model:" in create.query
    assert 'model: "toy-4d"' in search.query
    for example in (upsert, search, upsert_notes):
        assert example.variables is not None
        assert isinstance(json.loads(example.variables), dict)
    # The text half: the packaged model's collection, records without vectors, a text query.
    assert 'model: {name: "all-MiniLM-L6-v2"}' in create_notes.query
    assert upsert_notes.variables is not None
    assert all("vector" not in r for r in json.loads(upsert_notes.variables)["records"])
    assert "text:" in by_text.query


def test_readme_blocks_follow_the_conventions() -> None:
    markdown = """
```graphql
query A { a }
```

```json
{"x": 1}
```

```graphql-sdl
type Query { a: Int }
```

```graphql
# expect: BAD_USER_INPUT
query B { b }
```

text between

```json
{"not": "variables of B"}
```
"""
    a, b = graphql_examples(markdown)
    assert (a.query, a.variables, a.expect) == ("query A { a }\n", {"x": 1}, None)
    assert (b.variables_text, b.expect) == (None, "BAD_USER_INPUT")


def test_a_section_ends_at_the_next_heading_outside_code() -> None:
    markdown = "## A\n### B\none\n```sh\n# not a heading\n```\n#### C\ntwo\n### D\nthree\n"
    assert section(markdown, "### B") == "one\n```sh\n# not a heading\n```\n#### C\ntwo\n"
    with pytest.raises(StopIteration):
        section(markdown, "### E")
