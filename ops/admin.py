"""Operator commands: status, rebuild, replay, audit, retry-parked, jobs, snapshots drop."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar
from uuid import UUID

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from core import heap
from core.settings import Settings, get_settings
from ops.status import gather_status, to_json
from projections.registry import PROJECTIONS
from subscriptions import FULFILMENT
from subscriptions.ports import ReadSide
from workers.bootstrap import read_side, repository
from workers.completeness import audit_projection
from workers.jobs import Jobs
from workers.rebuild import RebuildResult, rebuild
from workers.replay import replay_stream, retry_parked

# Piped or redirected output is read by grep and scripts: no cutting ids at 80 columns.
console = Console(width=None if sys.stdout.isatty() else 200)
T = TypeVar("T")
Projection = Annotated[str | None, typer.Argument(help=f"One of: {', '.join(PROJECTIONS)}")]
All = Annotated[bool, typer.Option("--all", help="Every projection")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON (for scripts)")]
# `status --watch`: how often it redraws, by default and at the fastest (each is a full scan
# of the checkpoints and a lag count per subscriber).
WATCH_INTERVAL, MIN_WATCH_INTERVAL = 2.0, 0.1


def run(work: Callable[[ReadSide], Awaitable[T]], settings: Settings | None = None) -> T:
    """Open the stores (settings read once, here, unless given), run `work`, close them."""

    async def main() -> T:
        async with read_side(settings or get_settings(), "ordertrail-ops") as side:
            # A rebuild, audit or replay decodes as many events as a worker's catch-up: collect
            # as a worker does, or decoding runs at up to half its rate (core/heap.py).
            heap.settle()
            return await work(side)

    return asyncio.run(main())


def chosen(projection: str | None, every: bool) -> list[str]:
    """The projections a command was asked for (exit 2 if none or unknown)."""
    if every:
        return list(PROJECTIONS)
    if projection not in PROJECTIONS:
        typer.echo(f"error: name a projection ({', '.join(PROJECTIONS)}) or --all", err=True)
        raise typer.Exit(2)
    return [projection]


def status(
    as_json: Json = False,
    watch: Annotated[
        bool, typer.Option("--watch", help="Redraw until Ctrl-C (with --json: a line each time)")
    ] = False,
    interval: Annotated[
        float, typer.Option(min=MIN_WATCH_INTERVAL, help="Seconds between redraws")
    ] = WATCH_INTERVAL,
) -> None:
    """Per subscriber: checkpoint, lag, owner, parked events, last error; the store's head."""
    settings = get_settings()
    stalled = settings.subscriber_stalled_seconds
    if not watch:
        report = run(lambda side: gather_status(side, stalled_after=stalled), settings)
        if as_json:
            typer.echo(to_json(report))
        else:
            console.print(_status_view(report))
        return

    async def follow(side: ReadSide) -> None:
        # Ctrl-C (or SIGTERM) ends the watch between two reports: a KeyboardInterrupt landing in
        # the middle of a query cancelled it there, and closing the stores then could hang.
        stop, loop = asyncio.Event(), asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        try:
            # One connection for the whole watch: a redraw is a query, not a reconnect.
            with Live(console=console, auto_refresh=False, transient=False) as live:
                while not stop.is_set():
                    report = await gather_status(side, stalled_after=stalled)
                    if as_json:  # one JSON document per line: `| jq` follows it
                        typer.echo(json.dumps(json.loads(to_json(report))))
                    else:
                        live.update(_status_view(report), refresh=True)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), interval)
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C while the stores open: exit 0 too
        run(follow, settings)


def _status_view(report: dict[str, Any]) -> Group:
    table = Table("subscriber", "state", "lag (events)", "lag (s)", "owner", "parked", "last error")
    for name, sub in report["subscribers"].items():
        owner = sub["owner"]["worker"] if sub["owner"] else "-"
        state = sub["state"]
        if failure := sub.get("failure"):
            state = f"failing {failure['failing_seconds']:.0f}s, {failure['attempts']} attempts"
        error = (sub["last_error"] or "")[:60]
        lag = (str(sub["lag_events"]), str(sub["lag_seconds"]))
        table.add_row(name, state, *lag, owner, str(sub["parked"]), error)
    store = report["store"]
    lines = [f"head {store['head']}  watermark xid {store['watermark_xid']}"]
    lines += [
        f"  held back by pid {holder['pid']} ({holder['application_name']}) "
        f"since {holder['xact_start']}"
        for holder in store["held_back_by"]
    ]
    return Group(table, *lines)


def rebuild_command(
    projection: Projection = None,
    every: All = False,
    restart: Annotated[
        bool, typer.Option(help="Drop an interrupted rebuild and start over")
    ] = False,
    as_json: Json = False,
) -> None:
    """Rebuild projections blue/green: readers keep the old view until the atomic swap."""
    results = {}
    for name in chosen(projection, every):
        result = run(
            lambda s, name=name: _rebuild_with_bar(name, s, restart, show=not as_json)  # type: ignore[misc]
        )
        results[name] = {
            "generation": result.generation,
            "events": result.events,
            "apply_seconds": round(result.apply_seconds, 3),
            "seconds": round(result.seconds, 3),
            "rate": round(result.rate, 1),
            "resumed": result.resumed,
        }
        if not as_json:
            resumed = " (resumed)" if result.resumed else ""
            # The rate is the bar's: events over the time spent applying them.
            console.print(
                f"{name}: generation {result.generation}, {result.events} events applied "
                f"in {result.apply_seconds:.1f}s ({result.rate:,.0f}/s); "
                f"{result.seconds:.1f}s with set-up, swap and clean-up{resumed}"
            )
    if as_json:
        typer.echo(to_json(results))


async def _rebuild_with_bar(
    name: str, side: ReadSide, restart: bool, show: bool = True
) -> RebuildResult:
    if not show:
        return await rebuild(name, side, restart=restart)
    columns = (
        TextColumn(f"[bold]{name}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} ev/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as bar:
        task = bar.add_task(name, total=None, rate="-")
        started: float | None = None  # the rebuild's first report, (0, total): applying starts

        def progress(done: int, total: int) -> None:
            nonlocal started
            now = asyncio.get_running_loop().time()
            started = now if started is None else started
            rate = f"{done / max(now - started, 1e-9):,.0f}" if done else "-"
            bar.update(task, completed=done, total=total, rate=rate)

        return await rebuild(name, side, progress=progress, restart=restart)


def replay(
    stream: Annotated[UUID, typer.Option("--stream", help="The stream id")], as_json: Json = False
) -> None:
    """Re-project one stream into every projection that handles it."""
    try:
        rewritten = run(lambda side: replay_stream(stream, side))
    except KeyError as exc:
        typer.echo(f"error: {exc.args[0]}", err=True)
        raise typer.Exit(2) from exc  # no such stream: a bad argument
    if as_json:
        typer.echo(to_json({"stream": str(stream), "rewritten": rewritten}))
        return
    for name, documents in rewritten.items():
        console.print(f"{name}: {documents} document(s) rewritten")


def audit(
    projection: Projection = None,
    every: All = False,
    as_json: Json = False,
) -> None:
    """Prove each projection applied every event it handles; exit 1 if there is a hole."""
    names = chosen(projection, every)

    async def work(side: ReadSide) -> dict[str, Any]:
        return {name: await audit_projection(name, side) for name in names}

    report = run(work)
    if as_json:
        typer.echo(to_json(report))
    else:
        for name, result in report.items():
            verdict = "complete" if not result["holes"] else f"{len(result['holes'])} hole(s)"
            console.print(f"{name}: {result['checked']} checked, {verdict}")
            for hole in result["holes"][:20]:
                console.print(f"  {to_json(hole)}".replace("\n", " "))
    if any(result["holes"] for result in report.values()):
        raise typer.Exit(1)


def retry_parked_command(
    projection: Annotated[str, typer.Argument(help="The projection, or fulfilment")],
    as_json: Json = False,
) -> None:
    """Apply a subscriber's parked events again (as `parked retry`); exit 1 if some still fail."""
    if projection != FULFILMENT:
        chosen(projection, False)
    settings = get_settings()
    result = run(
        lambda side: retry_parked(projection, side, repository(side.store, settings)), settings
    )
    report_retry(projection, result, as_json)


def report_retry(name: str, result: dict[str, Any], as_json: bool) -> None:
    """Print what a retry of parked events did; exit 1 if some still fail."""
    if as_json:
        typer.echo(to_json({"subscriber": name, **result}))
    else:
        console.print(f"{name}: {result['fixed']} of {result['retried']} parked event(s) applied")
        for failure in result["still_failing"]:
            console.print(f"  still failing: {failure}")
    if result["still_failing"]:
        raise typer.Exit(1)


def jobs(
    limit: Annotated[int, typer.Option(min=1, max=1000, help="The newest this many")] = 20,
    as_json: Json = False,
) -> None:
    """Rebuild and replay jobs started through the API (newest first), with their progress."""
    found = run(lambda side: Jobs(side.db).recent(limit))
    if as_json:
        typer.echo(to_json({"jobs": found}))
        return
    table = Table("job", "kind", "target", "status", "done", "total", "rate", "created", "error")
    for job in found:
        total = job.get("total")
        table.add_row(
            job["_id"],
            job["kind"],
            job["target"],
            job["status"],
            str(job.get("done", 0)),
            "-" if total is None else str(total),
            f"{job['rate']:,.0f}/s" if job.get("rate") else "-",
            f"{job['created_at']:%Y-%m-%d %H:%M:%S}",
            (job.get("error") or "")[:60],
        )
    console.print(table)


def drop_snapshots(
    stream: Annotated[
        UUID | None, typer.Option("--stream", help="Only this stream's snapshot")
    ] = None,
    as_json: Json = False,
) -> None:
    """Delete snapshots, all or one stream's (a cache: no answer changes)."""
    dropped = run(lambda side: side.store.drop_snapshots(stream))
    if as_json:
        typer.echo(to_json({"dropped": dropped}))
    else:
        console.print(f"{dropped} snapshot(s) dropped")


def register(app: typer.Typer) -> None:
    """Add the operator commands to the CLI."""
    snapshots = typer.Typer(help="Aggregate snapshots.", no_args_is_help=True)
    snapshots.command("drop")(drop_snapshots)
    app.add_typer(snapshots, name="snapshots")
    app.command()(status)
    app.command("rebuild")(rebuild_command)
    app.command()(replay)
    app.command()(audit)
    app.command("retry-parked")(retry_parked_command)
    app.command()(jobs)
