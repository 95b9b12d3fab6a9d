"""Request limits, each checked before any store call, each answering ``LIMIT_EXCEEDED``.

In the order a request meets them:

1. ``BodySizeLimit`` (ASGI middleware): ``Content-Length`` over ``max_body_bytes`` is refused
   before a byte is read, and a body that streams past it (chunked, or a lying header) is cut off
   at the limit: HTTP 413 with a GraphQL-shaped error, before anything is parsed.
2. Tokens (Strawberry's ``MaxTokensLimiter``): the parser stops after ``max_tokens``.
3. ``RequestGate.on_validate``, before any schema validation:
   the size of the document with fragments inlined (``cost.expanded_size``); then depth and
   aliases (``cost.operation_depths``, ``cost.alias_count``: Strawberry's ``QueryDepthLimiter``
   and ``MaxAliasesLimiter`` measures, each fragment walked once).
4. ``RequestGate.on_execute``, after validation and before any resolver: the cost
   (``cost.operation_cost``) against ``max_cost``.

A document that passed the checks of step 3 and Strawberry's schema validation is remembered,
parsed, by its text (``ValidDocuments``, one bounded LRU per app), so the same query with new
variables, the usual traffic of a frontend, skips parsing, the token limit and both validations
(their cost per request: docs/measurements.md). The cost check depends on the variables and runs
every time.

The limits of single arguments (topK, batch sizes, filter depth, page size) are the use cases'.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

from graphql import DocumentNode, GraphQLError
from graphql import ExecutionResult as GraphQLExecutionResult
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from strawberry.extensions import MaxTokensLimiter, SchemaExtension

from graph.http.cost import Caps, alias_count, expanded_size, operation_cost, operation_depths
from graph.http.errors import send_error
from graph.settings import Settings
from store import LimitExceeded, VectorqlError

# Fields once fragments are inlined, per allowed token: generous for real queries (a fragment
# used a few times), fatal to exponential fragment fan-out.
EXPANSION_PER_TOKEN = 5

ExtensionFactory = Callable[[], SchemaExtension]

VALID_DOCUMENTS = 512  # distinct query texts remembered per app


class ValidDocuments:
    """Query texts known to pass validation and the shape limits, with their parsed documents
    (a bounded LRU, per app). A document is immutable once parsed: requests share it."""

    def __init__(self, maxsize: int = VALID_DOCUMENTS) -> None:
        self._maxsize = maxsize
        self._documents: OrderedDict[str, tuple[object, DocumentNode]] = OrderedDict()

    def __contains__(self, query: str) -> bool:
        return self.get(query) is not None

    def get(self, query: str, *, schema: object = None) -> DocumentNode | None:
        """The document of ``query`` if it was validated against ``schema`` (the live schema
        changes when collections do: a typed query valid before a drop is not after it)."""
        found = self._documents.get(query)
        if found is None or found[0] is not schema:
            return None
        self._documents.move_to_end(query)
        return found[1]

    def add(self, query: str, document: DocumentNode, *, schema: object = None) -> None:
        self._documents[query] = (schema, document)
        self._documents.move_to_end(query)
        while len(self._documents) > self._maxsize:
            self._documents.popitem(last=False)


def limit_extensions(settings: Settings) -> list[ExtensionFactory]:
    """The schema extensions that enforce ``settings``' query limits (one instance per request)."""
    caps = Caps(
        top_k=settings.max_top_k,
        search_batch=settings.max_search_batch,
        page_size=settings.max_page_size,
    )
    valid = ValidDocuments()

    def tokens() -> SchemaExtension:
        return MaxTokensLimiter(max_token_count=settings.max_tokens)

    def gate() -> SchemaExtension:
        return RequestGate(
            max_depth=settings.max_depth,
            max_aliases=settings.max_aliases,
            caps=caps,
            max_cost=settings.max_cost,
            max_expanded=settings.max_tokens * EXPANSION_PER_TOKEN,
            valid=valid,
        )

    return [tokens, gate]


def _refusal(error: VectorqlError, nodes: Any = None) -> GraphQLError:
    return GraphQLError(error.message, nodes=nodes, original_error=error)


class RequestGate(SchemaExtension):
    def __init__(
        self,
        *,
        max_depth: int,
        max_aliases: int,
        caps: Caps,
        max_cost: int,
        max_expanded: int,
        valid: ValidDocuments | None = None,
    ) -> None:
        self.max_depth = max_depth
        self.max_aliases = max_aliases
        self.valid = valid
        self.known = False  # this request's document came from ``valid``
        self.caps = caps
        self.max_cost = max_cost
        self.max_expanded = max_expanded

    def on_parse(self) -> Iterator[None]:
        ec = self.execution_context
        if self.valid is not None and ec.query is not None and ec.graphql_document is None:
            document = self.valid.get(ec.query, schema=ec.schema)
            if document is not None:
                self.known = True
                ec.graphql_document = document  # Strawberry skips parsing a document it has
        yield

    def on_validate(self) -> Iterator[None]:
        ec = self.execution_context
        if ec.graphql_document is not None:
            if self.known:
                ec.pre_execution_errors = []  # validated before: Strawberry skips validation
            else:
                ec.pre_execution_errors = self._check_shape() or None
        yield
        # Strawberry's validation ran inside this hook: remember a document that passed.
        if (
            self.valid is not None
            and not self.known
            and ec.query is not None
            and ec.graphql_document is not None
            and ec.pre_execution_errors == []
        ):
            self.valid.add(ec.query, ec.graphql_document, schema=ec.schema)

    def _check_shape(self) -> list[GraphQLError]:
        ec = self.execution_context
        document = ec.graphql_document
        assert document is not None
        size = expanded_size(document)
        if size > self.max_expanded:
            return [
                _refusal(
                    LimitExceeded(
                        f"the document has {size} fields once fragments are inlined; the limit "
                        f"is {self.max_expanded}",
                        extensions={"limit": self.max_expanded},
                    )
                )
            ]
        errors = [
            _refusal(
                LimitExceeded(
                    f"'{name}' exceeds maximum operation depth of {self.max_depth}",
                    extensions={"limit": self.max_depth},
                )
            )
            for name, depth in operation_depths(document).items()
            if depth > self.max_depth
        ]
        aliases = alias_count(document)
        if aliases > self.max_aliases:
            errors.append(
                _refusal(
                    LimitExceeded(
                        f"{aliases} aliases found. Allowed: {self.max_aliases}",
                        extensions={"limit": self.max_aliases},
                    )
                )
            )
        return errors

    def on_execute(self) -> Iterator[None]:
        ec = self.execution_context
        if ec.graphql_document is not None and ec.result is None:
            cost = operation_cost(
                ec.graphql_document,
                operation_name=ec.operation_name,
                variables=ec.variables,
                caps=self.caps,
                collections=getattr(ec.schema, "collection_fields", frozenset()),
            )
            if cost > self.max_cost:
                error = LimitExceeded(
                    f"query cost {cost} is over the limit of {self.max_cost}: ask for fewer "
                    "hits (topK), vectors, fields or searches per request",
                    extensions={"cost": cost, "limit": self.max_cost},
                )
                # A result set before execution makes Strawberry skip it.
                ec.result = GraphQLExecutionResult(data=None, errors=[_refusal(error)])
        yield


MAX_JSON_DEPTH = 64  # metadata may nest 32 levels; a request adds a few around it


def decode_json(data: str | bytes) -> object:
    """``json.loads`` for request bodies, refusing nesting deeper than ``MAX_JSON_DEPTH`` (deep
    nesting exhausts the recursion of the decoder and of GraphQL's input coercion)."""
    try:
        value = json.loads(data)
    except RecursionError:
        raise json.JSONDecodeError("JSON nested too deeply", "", 0) from None
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise json.JSONDecodeError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels", "", 0)
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
    return value


class BodyTooLarge(Exception):
    """Raised from ``receive`` when the body passes the limit (caught by ``BodySizeLimit``)."""


class BodyTooSlow(Exception):
    """Raised from ``receive`` when the body has not arrived in time (caught likewise)."""


class BodySizeLimit:
    """Pure ASGI middleware: refuse request bodies over ``max_bytes`` before they are parsed,
    counting what arrives (a missing or lying ``Content-Length`` and chunked bodies included),
    and cut off a body that has not fully arrived ``timeout`` seconds after the first read."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, timeout: float = 30.0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared < 0:
                    await self._refuse(send, status=400)
                    return
                if declared > self.max_bytes:
                    await self._refuse(send, status=413)
                    return
        received = 0
        deadline: float | None = None
        done = False
        started = False
        loop = asyncio.get_running_loop()

        async def counting_receive() -> Message:
            nonlocal received, deadline, done
            if done:  # the body is in: what follows is a disconnect, which may wait forever
                return await receive()
            if deadline is None:
                deadline = loop.time() + self.timeout
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise BodyTooSlow from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge
                done = not message.get("more_body", False)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(send, status=413)
        except BodyTooSlow:
            if not started:
                await self._refuse(send, status=408)

    async def _refuse(self, send: Send, *, status: int) -> None:
        if status == 413:
            message, code = f"request body is over the limit of {self.max_bytes} bytes", None
        elif status == 408:
            message, code = f"request body not received within {self.timeout:g} s", None
        else:
            message, code = "invalid Content-Length", "BAD_USER_INPUT"
        limit = {413: self.max_bytes, 408: self.timeout}.get(status)
        await send_error(
            send,
            status=status,
            message=message,
            code=code or "LIMIT_EXCEEDED",
            extensions={"limit": limit} if limit is not None else None,
        )
