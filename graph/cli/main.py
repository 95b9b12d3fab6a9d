"""The ``vectorql`` command: serve, schema, and the operations that share the store."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from pydantic import ValidationError
from pydantic_settings import SettingsError

from graph.settings import ENV_PREFIX, InsecureSettings, Settings, describe_error

cli = typer.Typer(help="vectorql: a GraphQL API for embeddings.", no_args_is_help=True)


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment and CLI overrides; exits 2 with one line if invalid."""
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**given)  # type: ignore[arg-type]
    except (ValidationError, SettingsError) as e:
        typer.echo(f"vectorql: {describe_error(e)}", err=True)
        raise typer.Exit(2) from None


@cli.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind.")] = None,
    workers: Annotated[int | None, typer.Option(help="uvicorn worker processes.")] = None,
    reload: Annotated[bool, typer.Option(help="Restart on code changes (development).")] = False,
    examples: Annotated[
        bool | None, typer.Option(help="Serve the worked example page at /examples/.")
    ] = None,
) -> None:
    """Serve the GraphQL API (GraphiQL at /graphql)."""
    import uvicorn

    from graph.logs import configure_logging

    settings = load_settings(host=host, port=port, workers=workers, examples=examples)
    if settings.workers > 1 and settings.milvus_is_lite_file:
        _refuse_workers_on_lite(settings.milvus_uri)
    from graph.http import check_exposure
    from graph.telemetry import check_metrics

    try:
        check_exposure(settings)  # the app logs the warnings when it is allowed
        check_metrics(settings)
    except InsecureSettings as e:
        typer.echo(f"vectorql: {e}", err=True)
        raise typer.Exit(2) from None
    # Workers and the reloader build the app in other processes from the environment.
    for name, value in (
        ("HOST", settings.host),
        ("PORT", settings.port),
        ("EXAMPLES", settings.examples),
    ):
        os.environ[f"{ENV_PREFIX}{name}"] = str(value)
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    # A SIGTERM while the local engine starts ends the claim below cleanly (the server it was
    # starting is stopped); uvicorn installs its own handlers while it runs.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    with engine(settings) as resolved:
        if resolved.workers > 1 and resolved.milvus_is_lite_file:
            _refuse_workers_on_lite(resolved.milvus_uri)
        os.environ[f"{ENV_PREFIX}MILVUS_URI"] = resolved.milvus_uri
        if resolved.milvus_token is not None:  # the managed server's login (environ is 0400)
            os.environ[f"{ENV_PREFIX}MILVUS_TOKEN"] = resolved.milvus_token.get_secret_value()
        uvicorn.run(
            "graph.app:app_from_environment",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers if not reload else None,
            reload=reload,
            log_level=settings.log_level.lower(),
            log_config=None,  # uvicorn's loggers go through graph.logs like every other
            access_log=False,  # replaced by the request line (graph.http.instrumentation)
            proxy_headers=True,
        )


@contextlib.contextmanager
def engine(settings: Settings) -> Iterator[Settings]:
    """``graph.app.local_milvus`` for a command: a managed engine that cannot be used is one
    line on stderr and exit code 2, not a traceback."""
    from graph.app import local_milvus
    from store import LocalEngineError

    try:
        with local_milvus(settings) as resolved:
            yield resolved
    except LocalEngineError as e:
        typer.echo(f"vectorql: {e}", err=True)
        raise typer.Exit(2) from None


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def _refuse_workers_on_lite(path: str) -> None:
    typer.echo(
        f"vectorql: --workers > 1 needs a Milvus server: the Milvus Lite file {path} opens in "
        f"one process only. Use the default {ENV_PREFIX}MILVUS_URI=local (the managed Milvus "
        "standalone; needs the `milvus` package), or run `milvus-lite server --data-dir "
        f"./data/milvus-lite` and set {ENV_PREFIX}MILVUS_URI=http://127.0.0.1:19530.",
        err=True,
    )
    raise typer.Exit(2)


@cli.command()
def schema(
    live: Annotated[
        bool,
        typer.Option(
            "--live",
            help="The schema a running server serves, with each collection's typed fields "
            "(by introspection); without it, the generic schema (schema.graphql).",
        ),
    ] = False,
    url: Annotated[
        str | None,
        typer.Option("--url", help="With --live: the server (default: this machine's serve)."),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option("--api-key", envvar=f"{ENV_PREFIX}API_KEY", help="A read key, if needed."),
    ] = None,
) -> None:
    """Print the GraphQL schema (SDL)."""
    if not live:
        from graph.schema import build_schema

        sys.stdout.write(build_schema().as_str() + "\n")
        return
    from graph.cli.live_schema import live_sdl
    from graph.cli.remote import local_url

    sdl, version = live_sdl(url or local_url(load_settings()), api_key=api_key)
    if version is not None:
        sys.stdout.write(f"# schema version {version}\n")
    sys.stdout.write(sdl + "\n")


@cli.command("import")
def import_(
    file: Annotated[
        Path,
        typer.Argument(
            exists=True, dir_okay=False, readable=True, help="JSON Lines file, plain or gzip."
        ),
    ],
    collection: Annotated[
        str, typer.Option("--collection", "-c", help="The collection to import into.")
    ],
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, max=100_000, help="Records per write.")
    ] = 1000,
    strict: Annotated[bool, typer.Option("--strict", help="Stop at the first bad line.")] = False,
    url: Annotated[
        str | None,
        typer.Option(
            "--url",
            help="Import through this running server's GraphQL endpoint "
            "(http://HOST:PORT/graphql) instead of opening the store.",
        ),
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            envvar=f"{ENV_PREFIX}API_KEY",
            help="A write key, when importing through a server that requires keys.",
        ),
    ] = None,
) -> None:
    """Import records from JSON Lines: {"id", "vector", "metadata", "text", "tenant"} per line.

    Vectors are lists of numbers or base64 float32. Bad lines are reported with their line
    numbers (exit code 1); the good ones are written. Safe to re-run: records are upserted by id,
    and a line without an id always gets the same id. While `vectorql serve` holds the default
    Milvus Lite file, the import goes through that server's API (as with --url).
    """
    from graph.cli.importing import run_import

    settings = load_settings()
    # Through a server's API the command needs no engine of its own.
    with contextlib.nullcontext(settings) if url else engine(settings) as resolved:
        code = run_import(
            resolved,
            path=file,
            collection=collection,
            batch_size=batch_size,
            strict=strict,
            url=url,
            api_key=api_key,
        )
    raise typer.Exit(code)


@cli.command()
def reconcile(
    full: Annotated[
        bool, typer.Option("--full", help="Compare every id in SQL and Milvus, not just counts.")
    ] = False,
) -> None:
    """Run one reconciler pass: index pending rows, finish deletes, remove Milvus orphans."""
    from graph.cli.importing import run_reconcile

    with engine(load_settings()) as settings:
        code = run_reconcile(settings, full=full)
    raise typer.Exit(code)


keys_cli = typer.Typer(
    help="API keys: create (shown once), list, revoke. Uses the server's database settings.",
    no_args_is_help=True,
)
cli.add_typer(keys_cli, name="keys")


@keys_cli.command("create")
def keys_create(
    scope: Annotated[
        str, typer.Option(help="read (queries), write (+ upserts, deletes) or admin (+ DDL).")
    ],
    tenant: Annotated[
        str | None, typer.Option(help="Bind the key to this tenant (multi-tenant collections).")
    ] = None,
    collection: Annotated[
        list[str] | None,
        typer.Option("--collection", "-c", help="Allow only this collection (repeatable)."),
    ] = None,
    name: Annotated[str | None, typer.Option(help="A label to recognise the key by.")] = None,
) -> None:
    """Create a key and print it once (only a salted hash is stored)."""
    from graph.cli.keys import run_create

    raise typer.Exit(
        run_create(load_settings(), scope=scope, tenant=tenant, collections=collection, name=name)
    )


@keys_cli.command("list")
def keys_list(
    json_: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table.")] = False,
) -> None:
    """List keys (never their secrets), revoked ones included."""
    from graph.cli.keys import run_list

    raise typer.Exit(run_list(load_settings(), as_json=json_))


@keys_cli.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key id (see `keys list`).")],
) -> None:
    """Revoke a key: servers refuse it within seconds."""
    from graph.cli.keys import run_revoke

    raise typer.Exit(run_revoke(load_settings(), key_id=key_id))


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
