"""``vectorql import`` and ``vectorql reconcile``: the store opened from the server's settings, a
progress bar, and a summary a person can act on."""

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
from graph.settings import ENV_PREFIX, Settings
from store import NotFound, Store, Unavailable, VectorqlError
from store.importer import ImportProgress, ImportSummary, import_jsonl
from store.reconciler import ReconcileReport

SHOWN_BAD_LINES = 20
T = TypeVar("T")


def run_import(
    settings: Settings, *, path: Path, collection: str, batch_size: int, strict: bool
) -> int:
    """Import ``path`` into ``collection``; the exit code: 0, or 1 for bad lines or a failure."""
    out = Console(soft_wrap=True)
    err = Console(stderr=True, soft_wrap=True)
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

    async def run(store: Store) -> ImportSummary:
        await store.collections.get(collection)  # NotFound before a progress bar is drawn
        with progress:
            summary = await import_jsonl(
                store,
                path=path,
                collection=collection,
                batch_size=batch_size,
                strict=strict,
                on_progress=on_progress,
            )
            if summary.stopped_at is None:
                progress.update(task, completed=total)
        return summary

    task = progress.add_task("import", total=total, records=0, rate=0.0, bad=0)
    summary = _with_store(settings, run, err)
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

    try:
        return asyncio.run(main())
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
        if settings.milvus_is_lite_file and "connect" in e.message:
            err.print(
                f"A Milvus Lite file ({escape(settings.milvus_uri)}) opens in one process only: "
                "stop `vectorql serve` first, or run `milvus-lite server` and set "
                f"{ENV_PREFIX}MILVUS_URI to it."
            )
        if "written" in e.extensions or "stored" in e.extensions:
            err.print(
                "Stored rows that did not reach Milvus stay pending: `vectorql reconcile` "
                "indexes them, and re-running the import is safe (records are upserted by id)."
            )
    except VectorqlError as e:
        err.print(f"vectorql: {escape(e.message)}")
    return None


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
