"""``vectorql import`` and ``vectorql reconcile``: the store opened from the server's settings (or,
for an import, a running server's API: ``graph.cli.remote``), a progress bar, and a summary a
person can act on."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

from graph.app import store_config
from graph.cli.remote import ApiClient, import_through_api, local_url, server_answers
from graph.settings import ENV_PREFIX, Settings
from store import (
    Forbidden,
    ImportProgress,
    ImportSummary,
    LimitExceeded,
    NotFound,
    ReconcileReport,
    Store,
    Unauthenticated,
    Unavailable,
    VectorqlError,
    import_jsonl,
    lite_file_in_use,
)

SHOWN_BAD_LINES = 20
T = TypeVar("T")


def run_import(
    settings: Settings,
    *,
    path: Path,
    collection: str,
    batch_size: int,
    strict: bool,
    url: str | None = None,
    api_key: str | None = None,
) -> int:
    """Import ``path`` into ``collection``; the exit code: 0, or 1 for bad lines or a failure.

    Without ``url`` the store is opened in this process, unless its Milvus Lite file is held by a
    running ``vectorql serve``: then the import goes through that server's API (one line says so),
    as it does with ``url``. Both ways draw the same progress bar and print the same summary."""
    out = Console(soft_wrap=True)
    err = Console(stderr=True, soft_wrap=True)
    if url is None and settings.milvus_is_lite_file and lite_file_in_use(settings.milvus_uri):
        url = local_url(settings)
        if not server_answers(url):
            err.print(
                f"vectorql: the Milvus Lite file {escape(settings.milvus_uri)} is open in another "
                f"process, and no vectorql server answers at {escape(url)}. Import through the "
                "server that holds it with --url http://HOST:PORT/graphql, or stop that process."
            )
            return 1
        err.print(
            f"vectorql serve at {escape(url)} holds {escape(settings.milvus_uri)}: "
            "importing through its API."
        )
    progress = Progress(
        BarColumn(bar_width=24),
        TaskProgressColumn(),
        TextColumn("{task.fields[records]:>9,} records"),
        TextColumn("{task.fields[rate]:>7,.0f}/s"),
        TextColumn("{task.fields[bad]:,} bad"),
        TimeElapsedColumn(),
        console=err,
    )
    total = path.stat().st_size

    def on_progress(p: ImportProgress) -> None:
        progress.update(
            task,
            completed=p.bytes_read,
            records=p.records_written,
            rate=p.records_per_second,
            bad=p.bad_lines,
        )

    async def with_progress(run: Awaitable[ImportSummary]) -> ImportSummary:
        with progress:
            summary = await run
            if summary.stopped_at is None:
                progress.update(task, completed=total)
        return summary

    async def into_store(store: Store) -> ImportSummary:
        await store.collections.get(collection)  # NotFound before a progress bar is drawn
        return await with_progress(
            import_jsonl(
                store,
                path=path,
                collection=collection,
                batch_size=batch_size,
                strict=strict,
                on_progress=on_progress,
            )
        )

    async def through_api(api: str) -> ImportSummary:
        client = ApiClient(api, api_key=api_key)
        try:
            await client.check_collection(collection)  # as above, and the key is checked
            return await with_progress(
                import_through_api(
                    client,
                    path=path,
                    collection=collection,
                    batch_size=batch_size,
                    strict=strict,
                    on_progress=on_progress,
                )
            )
        finally:
            await client.close()

    task = progress.add_task("import", total=total, records=0, rate=0.0, bad=0)
    if url is None:
        summary = _with_store(settings, into_store, err)
    else:
        summary = _run(lambda: through_api(url), err, settings=settings, api=url)
    if summary is None:
        return 1
    _print_summary(out, summary, path=path)
    return 0 if summary.ok else 1


def run_reconcile(settings: Settings, *, full: bool) -> int:
    """One reconciler pass; the exit code: 0, or 1 when it could not run."""
    out = Console(soft_wrap=True)
    err = Console(stderr=True, soft_wrap=True)

    async def run(store: Store) -> tuple[ReconcileReport, int]:
        report = await store.reconciler.run_once(full=full)
        return report, await store.reconciler.pending_count()

    result = _with_store(settings, run, err)
    if result is None:
        return 1
    report, pending = result
    if report.skipped:
        err.print("vectorql: another process holds the reconciler lease; nothing done.")
        return 1
    out.print(
        f"reconciled{' (full id comparison)' if full else ''}: "
        f"{report.pushed:,} pushed to Milvus, {report.deleted:,} deletes finished, "
        f"{report.orphans_removed:,} Milvus orphans removed, {pending:,} rows still pending"
    )
    if report.recreated:
        out.print(f"recreated from SQL: {escape(', '.join(report.recreated))}")
    if report.dropped_collections:
        out.print(
            f"dropped unowned Milvus collections: {escape(', '.join(report.dropped_collections))}"
        )
    return 0


def _with_store(settings: Settings, fn: Callable[[Store], Awaitable[T]], err: Console) -> T | None:
    """Run ``fn`` on a store opened from ``settings``; None (with a message) on failure."""

    async def main() -> T:
        # Milvus Lite logs a traceback when its file is locked; the message below says it better.
        logging.getLogger("milvus_lite.server_manager").setLevel(logging.CRITICAL)
        store = await Store.open(store_config(settings))
        try:
            return await fn(store)
        finally:
            await store.close()

    return _run(main, err, settings=settings)


def _run(
    main: Callable[[], Awaitable[T]], err: Console, *, settings: Settings, api: str | None = None
) -> T | None:
    """Run ``main``; None (with a message) on failure. ``api``: the server written through."""
    try:
        return asyncio.run(_awaited(main))
    except KeyboardInterrupt:
        err.print(
            "vectorql: interrupted. Re-running an import is safe (records are upserted by id); "
            "`vectorql reconcile` indexes rows left pending."
        )
        raise typer.Exit(130) from None
    except NotFound as e:
        err.print(f"vectorql: {escape(e.message)}")
    except Unavailable as e:
        err.print(f"vectorql: {escape(e.message)}")
        if api is None and settings.milvus_is_lite_file and "connect" in e.message:
            err.print(
                f"A Milvus Lite file ({escape(settings.milvus_uri)}) opens in one process only: "
                "stop the process that holds it, import through `vectorql serve` with --url, or "
                f"run `milvus-lite server` and set {ENV_PREFIX}MILVUS_URI to it."
            )
        if "written" in e.extensions or "stored" in e.extensions:
            err.print(
                "Stored rows that did not reach Milvus stay pending: `vectorql reconcile` "
                "indexes them, and re-running the import is safe (records are upserted by id)."
            )
    except (Unauthenticated, Forbidden) as e:
        err.print(f"vectorql: {escape(api or '')} refused the import: {escape(e.message)}")
        err.print(
            f"Pass a write key with --api-key (or {ENV_PREFIX}API_KEY); "
            "`vectorql keys create --scope write` makes one."
        )
    except LimitExceeded as e:
        err.print(f"vectorql: {escape(e.message)}")
        if api is not None:
            err.print("A smaller --batch-size sends less in one request.")
    except VectorqlError as e:
        err.print(f"vectorql: {escape(e.message)}")
    return None


async def _awaited(main: Callable[[], Awaitable[T]]) -> T:
    return await main()


def _print_summary(out: Console, summary: ImportSummary, *, path: Path) -> None:
    out.print(
        f"{escape(str(path))} -> {escape(summary.collection)}: "
        f"{summary.records_written:,} records written from {summary.lines_read:,} lines "
        f"in {summary.seconds:.1f} s ({summary.records_per_second:,.0f} records/s), "
        f"{summary.bad_count:,} bad lines"
    )
    if summary.stopped_at is not None:
        out.print(
            f"stopped at line {summary.stopped_at} (--strict): the good lines before it are "
            "written, nothing from it on."
        )
    for bad in summary.bad_lines[:SHOWN_BAD_LINES]:
        who = f" (id {escape(repr(bad.id))})" if bad.id is not None else ""
        out.print(f"  line {bad.line}{who}: {escape(bad.reason)}")
    if summary.bad_count > SHOWN_BAD_LINES:
        out.print(f"  ... and {summary.bad_count - SHOWN_BAD_LINES:,} more bad lines")
