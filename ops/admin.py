"""Operator commands: status, rebuild, replay, audit, retry-parked, snapshots drop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar
from uuid import UUID

import typer
from rich.console import Console
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
from workers.rebuild import RebuildResult, rebuild
from workers.replay import replay_stream, retry_parked

console = Console()
T = TypeVar("T")
Projection = Annotated[str | None, typer.Argument(help=f"One of: {', '.join(PROJECTIONS)}")]
All = Annotated[bool, typer.Option("--all", help="Every projection")]


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


def status(as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False) -> None:
    """Per subscriber: checkpoint, lag, owner, parked events, last error; the store's head."""
    settings = get_settings()
    stalled = settings.subscriber_stalled_seconds
    report = run(lambda side: gather_status(side, stalled_after=stalled), settings)
    if as_json:
        typer.echo(to_json(report))
        return
    table = Table("subscriber", "state", "lag (events)", "lag (s)", "owner", "parked", "last error")
    for name, sub in report["subscribers"].items():
        owner = sub["owner"]["worker"] if sub["owner"] else "-"
        state = sub["state"]
        if failure := sub.get("failure"):
            state = f"failing {failure['failing_seconds']:.0f}s, {failure['attempts']} attempts"
        error = (sub["last_error"] or "")[:60]
        lag = (str(sub["lag_events"]), str(sub["lag_seconds"]))
        table.add_row(name, state, *lag, owner, str(sub["parked"]), error)
    console.print(table)
    store = report["store"]
    console.print(f"head {store['head']}  watermark xid {store['watermark_xid']}")
    for holder in store["held_back_by"]:
        console.print(
            f"  held back by pid {holder['pid']} ({holder['application_name']}) "
            f"since {holder['xact_start']}"
        )


def rebuild_command(
    projection: Projection = None,
    every: All = False,
    restart: Annotated[
        bool, typer.Option(help="Drop an interrupted rebuild and start over")
    ] = False,
) -> None:
    """Rebuild projections blue/green: readers keep the old view until the atomic swap."""
    for name in chosen(projection, every):
        result = run(lambda s, name=name: _rebuild_with_bar(name, s, restart))  # type: ignore[misc]
        resumed = " (resumed)" if result.resumed else ""
        rate = result.events / max(result.seconds, 1e-9)
        console.print(
            f"{name}: generation {result.generation}, {result.events} events "
            f"in {result.seconds:.1f}s ({rate:,.0f}/s){resumed}"
        )


async def _rebuild_with_bar(name: str, side: ReadSide, restart: bool) -> RebuildResult:
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
        started = asyncio.get_running_loop().time()

        def progress(done: int, total: int) -> None:
            elapsed = asyncio.get_running_loop().time() - started
            bar.update(task, completed=done, total=total, rate=f"{done / max(elapsed, 1e-9):,.0f}")

        return await rebuild(name, side, progress=progress, restart=restart)


def replay(stream: Annotated[UUID, typer.Option("--stream", help="The stream id")]) -> None:
    """Re-project one stream into every projection that handles it."""
    try:
        rewritten = run(lambda side: replay_stream(stream, side))
    except KeyError as exc:
        typer.echo(f"error: {exc.args[0]}", err=True)
        raise typer.Exit(1) from exc
    for name, documents in rewritten.items():
        console.print(f"{name}: {documents} document(s) rewritten")


def audit(
    projection: Projection = None,
    every: All = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
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
) -> None:
    """Apply a subscriber's parked events again (after a fix); exit 1 if some still fail."""
    if projection != FULFILMENT:
        chosen(projection, False)
    settings = get_settings()
    result = run(
        lambda side: retry_parked(projection, side, repository(side.store, settings)), settings
    )
    console.print(f"{projection}: {result['fixed']} of {result['retried']} parked event(s) applied")
    for failure in result["still_failing"]:
        console.print(f"  still failing: {failure}")
    if result["still_failing"]:
        raise typer.Exit(1)


def drop_snapshots(
    stream: Annotated[
        UUID | None, typer.Option("--stream", help="Only this stream's snapshot")
    ] = None,
) -> None:
    """Delete snapshots, all or one stream's (a cache: no answer changes)."""
    dropped = run(lambda side: side.store.drop_snapshots(stream))
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
