"""The README's GraphQL examples, read the way its conventions say (shared by the README tests).

- A ```graphql block is an executable document: one or more operations (and fragments). It must
  not hold type definitions: schema (SDL) goes in a ```graphql-sdl block, which is never run.
- A ```json block right after a ```graphql block (nothing but blank lines between them) holds that
  block's variables, a JSON object.
- A comment line ``# expect: CODE`` inside a ```graphql block marks an example that shows an
  error: it must fail with ``extensions.code`` CODE. Other blocks must answer without errors.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FIRST_SESSION = "### A first session in GraphiQL"

_FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>[\w-]*)\s*$")
_EXPECT = re.compile(r"^\s*#\s*expect:\s*(?P<code>[A-Z_]+)\b", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Block:
    lang: str
    text: str
    line: int  # 1-based line of the opening fence


@dataclass(frozen=True, slots=True)
class GraphQLExample:
    """A ```graphql block with its variables block (if any)."""

    query: str
    variables_text: str | None
    line: int

    @property
    def variables(self) -> dict[str, Any]:
        if self.variables_text is None:
            return {}
        value = json.loads(self.variables_text)
        assert isinstance(value, dict), f"README line {self.line}: variables must be an object"
        return value

    @property
    def expect(self) -> str | None:
        """The error code this example must fail with, or ``None`` when it must succeed."""
        match = _EXPECT.search(self.query)
        return match.group("code") if match else None


def blocks(markdown: str) -> list[tuple[Block, bool]]:
    """Every fenced block, and whether it follows the previous block with only blank lines."""
    found: list[tuple[Block, bool]] = []
    lines = markdown.splitlines()
    i, last_end = 0, -2
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        indent = opening.group("indent")
        body: list[str] = []
        j = i + 1
        while j < len(lines) and lines[j].strip() != "```":
            body.append(lines[j].removeprefix(indent))
            j += 1
        adjacent = last_end >= 0 and all(not line.strip() for line in lines[last_end + 1 : i])
        text = "\n".join(body) + "\n"
        found.append((Block(opening.group("lang"), text, i + 1), adjacent))
        last_end = j
        i = j + 1
    return found


def graphql_examples(markdown: str) -> list[GraphQLExample]:
    """The ```graphql blocks in order, each with the ```json block that follows it."""
    examples: list[GraphQLExample] = []
    pending: Block | None = None
    for block, adjacent in blocks(markdown):
        if block.lang == "json" and pending is not None and adjacent:
            examples.append(GraphQLExample(pending.text, block.text, pending.line))
            pending = None
            continue
        if pending is not None:
            examples.append(GraphQLExample(pending.text, None, pending.line))
            pending = None
        if block.lang == "graphql":
            pending = block
    if pending is not None:
        examples.append(GraphQLExample(pending.text, None, pending.line))
    return examples


def section(markdown: str, heading: str) -> str:
    """The text under ``heading`` up to the next heading of the same or a higher level (lines
    inside fenced blocks, such as ``# comments``, are not headings)."""
    level = len(heading) - len(heading.lstrip("#"))
    lines = markdown.splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.rstrip("\n") == heading) + 1
    fenced = False
    for end in range(start, len(lines)):
        line = lines[end]
        if _FENCE.match(line.rstrip("\n")):
            fenced = not fenced
        elif not fenced and re.match(rf"#{{1,{level}}} ", line):
            return "".join(lines[start:end])
    return "".join(lines[start:])
