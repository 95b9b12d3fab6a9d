"""The GraphiQL page, served with its browser assets from this package instead of a CDN.

Strawberry's own page (``strawberry/static/graphiql.html``) loads React, GraphiQL and the explorer
plugin from unpkg and is blank without internet. This page (the template
``graph/templates/graphiql.html``) is the same page (same asset versions, same files, same sha384
integrity values) with the assets vendored under ``graph/static/graphiql/``
(see the README there; ``scripts/vendor_graphiql.sh`` refreshes them), minus the subscription /
websocket parts, plus the README's first-session operations as tabs with their variables
(``graph/http/first_session.py``) and, when the server requires API keys, an ``Authorization``
placeholder in the headers editor.

Mount the assets with ``StaticFiles(directory=assets_directory())`` at ``assets_path``.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from string import Template

from graph.http.first_session import Example, first_session

__all__ = [
    "ASSETS",
    "KEY_HEADERS",
    "NO_HEADERS",
    "Asset",
    "assets_directory",
    "default_headers",
    "graphiql_html",
    "welcome",
]


@dataclass(frozen=True, slots=True)
class Asset:
    """One vendored file: its path under :func:`assets_directory` and its SRI value."""

    path: str
    integrity: str
    kind: str  # "head-script", "style" or "body-script" (where and how the page loads it)


# Order matters: React before ReactDOM before GraphiQL before the plugin that extends it, and the
# placement is Strawberry's (scripts needed as globals in <head>, GraphiQL at the end of <body>).
# The integrity values are the ones in Strawberry 0.341's template (checked against the files).
ASSETS: tuple[Asset, ...] = (
    Asset(
        "react/react.production.min.js",  # react@18.2.0 umd/
        "sha384-tMH8h3BGESGckSAVGZ82T9n90ztNXxvdwvdM6UoR56cYcf+0iGXBliJ29D+wZ/x8",
        "head-script",
    ),
    Asset(
        "react-dom/react-dom.production.min.js",  # react-dom@18.2.0 umd/
        "sha384-bm7MnzvK++ykSwVJ2tynSE5TRdN+xL418osEVF2DE/L/gfWHj91J2Sphe582B1Bh",
        "head-script",
    ),
    Asset(
        "js-cookie/js.cookie.min.js",  # js-cookie@3.0.5 dist/
        "sha384-/vxhYfM1LENRhdpZ8dwEsQn/X4VhpbEZSiU4m/FwR+PVpzar4fkEOw8FP9Y+OfQN",
        "head-script",
    ),
    Asset(
        "graphiql/graphiql.min.css",  # graphiql@3.8.3
        "sha384-Mq3vbRBY71jfjQAt/DcjxUIYY33ksal4cgdRt9U/hNPvHBCaT2JfJ/PTRiPKf0aM",
        "style",
    ),
    Asset(
        "plugin-explorer/style.css",  # @graphiql/plugin-explorer@1.0.2 dist/
        "sha384-5DFJlDPW2tSATRbM8kzoP1j194jexLswuNmClWoRr2Q0x7R68JIQzPHZ02Faktwi",
        "style",
    ),
    Asset(
        "graphiql/graphiql.min.js",  # graphiql@3.8.3
        "sha384-HbRVEFG0JGJZeAHCJ9Xm2+tpknBQ7QZmNlO/DgZtkZ0aJSypT96YYGRNod99l9Ie",
        "body-script",
    ),
    Asset(
        "plugin-explorer/index.umd.js",  # @graphiql/plugin-explorer@1.0.2 dist/
        "sha384-2oonKe47vfHIZnmB6ZZ10vl7T0Y+qrHQF2cmNTaFDuPshpKqpUMGMc9jgj9MLDZ9",
        "body-script",
    ),
)

KEY_HEADERS = '{\n  "Authorization": "Bearer <your key>"\n}'
NO_HEADERS = "{}"

_WELCOME = """\
# Welcome to vectorql's GraphiQL.
#{keys}
# The tabs above hold the README's first session: create a collection, upsert records, search,
# list collections. Run them in order (Ctrl-Enter or the play button).
#
# Keyboard shortcuts:
#
#       Run Query:  Ctrl-Enter (or press the play button)
#   Auto Complete:  Ctrl-Space (or just start typing)
#
"""
_WELCOME_KEYS = """
# This server requires an API key: put it in the Headers tab below
# ("Authorization": "Bearer <your key>"); `vectorql keys create` makes one.
#"""


def default_headers(*, keys: bool) -> str:
    """The headers editor's text: an ``Authorization`` placeholder only when keys are on."""
    return KEY_HEADERS if keys else NO_HEADERS


def welcome(*, keys: bool) -> str:
    """The text of a new tab; it mentions API keys only when the server requires them."""
    return _WELCOME.format(keys=_WELCOME_KEYS if keys else "")


@cache
def _page() -> Template:
    """The page itself, ``graph/templates/graphiql.html``: Strawberry's page without the
    subscription parts, with ``$$title``, the asset tags and the ``CONFIG`` object filled in."""
    return Template(
        (Path(__file__).resolve().parents[1] / "templates" / "graphiql.html").read_text()
    )


def assets_directory() -> Path:
    """The directory of vendored assets, to mount with ``StaticFiles(directory=...)``."""
    return Path(__file__).resolve().parents[1] / "static" / "graphiql"


def _script_json(value: object) -> str:
    """JSON that is safe inside a ``<script>`` element (no ``</script>``, ``<!--``, U+2028)."""
    text = json.dumps(value, ensure_ascii=False, indent=2)
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def _tag(asset: Asset, assets_path: str) -> str:
    url = html.escape(f"{assets_path}/{asset.path}", quote=True)
    if asset.kind == "style":
        return f'    <link rel="stylesheet" href="{url}" integrity="{asset.integrity}" />'
    return f'    <script src="{url}" integrity="{asset.integrity}"></script>'


def graphiql_html(
    *,
    keys: bool,
    endpoint: str = "/graphql",
    assets_path: str = "/graphiql-assets",
    default_query: str | None = None,
    headers: str | None = None,
    tabs: Sequence[Example] | None = None,
    persist_headers: bool = True,
    title: str = "vectorql GraphiQL",
) -> str:
    """Render the GraphiQL page.

    ``keys`` says whether the server requires API keys: only then do the headers editor and the
    text of a new tab mention ``Authorization: Bearer <key>``. ``endpoint`` is the GraphQL URL
    (relative to the page or absolute), ``assets_path`` the URL prefix where
    :func:`assets_directory` is mounted. ``tabs`` (default: :func:`first_session`, the README's
    first session) are preloaded as editor tabs with their variables, on a browser with no stored
    GraphiQL state; ``default_query`` (default: :func:`welcome`) fills new tabs; ``headers`` (a
    JSON object as text; default: :func:`default_headers`) prefills the headers editor of every
    tab. ``persist_headers`` keeps edited headers (the API key) in the browser's localStorage
    across reloads, as Strawberry's page does.
    """
    headers = default_headers(keys=keys) if headers is None else headers
    try:
        parsed = json.loads(headers)
    except ValueError as exc:
        raise ValueError(f"headers is not JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise ValueError("headers must be a JSON object")

    prefix = assets_path.rstrip("/")
    config = {
        "endpoint": endpoint,
        "defaultQuery": welcome(keys=keys) if default_query is None else default_query,
        "defaultHeaders": headers,
        "tabs": [
            {"query": tab.query, "variables": tab.variables}
            for tab in (first_session() if tabs is None else tabs)
        ],
        "persistHeaders": persist_headers,
    }
    return _page().substitute(
        title=html.escape(title),
        head_scripts="\n".join(_tag(a, prefix) for a in ASSETS if a.kind == "head-script"),
        styles="\n".join(_tag(a, prefix) for a in ASSETS if a.kind == "style"),
        body_scripts="\n".join(_tag(a, prefix) for a in ASSETS if a.kind == "body-script"),
        config=_script_json(config).replace("\n", "\n      "),
    )
