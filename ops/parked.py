"""`ordertrail parked list|retry|skip`: events subscribers gave up on, and what to do next."""

from __future__ import annotations

import getpass
from typing import Annotated, Any

import typer
from rich.table import Table

from core.settings import get_settings
from ops.admin import Json, chosen, console, report_retry, run
from ops.status import to_json
from projections.checkpoints import ParkedEvents
from subscriptions import FULFILMENT, SUBSCRIBER_NAMES
from subscriptions.ports import ReadSide
from workers.bootstrap import repository
from workers.replay import retry_parked

Subscriber = Annotated[str, typer.Argument(help=f"One of: {', '.join(SUBSCRIBER_NAMES)}")]
# Enough to read at a terminal; --limit raises it (the JSON is for scripts and pages through).
DEFAULT_LIST_LIMIT = 50


def _subscriber(name: str) -> str:
    """`name` if it is a subscriber (a projection or fulfilment), else exit 2."""
    if name != FULFILMENT:
        chosen(name, False)
    return name


def list_parked(
    subscriber: Annotated[
        str | None, typer.Argument(help="Only this subscriber's (default: all)")
    ] = None,
    skipped: Annotated[bool, typer.Option("--skipped", help="List skipped events too")] = False,
    limit: Annotated[
        int, typer.Option(min=1, max=10_000, help="At most this many per subscriber")
    ] = DEFAULT_LIST_LIMIT,
    as_json: Json = False,
) -> None:
    """Parked events, oldest first: position, stream, type, attempts, error."""
    names = [_subscriber(subscriber)] if subscriber else list(SUBSCRIBER_NAMES)

    async def work(side: ReadSide) -> dict[str, Any]:
        parked, found = ParkedEvents(side.db), {}
        for name in names:
            entries = await parked.list(name, limit)
            if skipped:
                entries += (await parked.skipped(name))[:limit]
            found[name] = {"waiting": await parked.count(name), "events": entries}
        return found

    report = run(work)
    if as_json:
        typer.echo(to_json(report))
        return
    table = Table("subscriber", "position", "stream", "type", "v", "tries", "parked at", "error")
    for name, found in report.items():
        for entry in found["events"]:
            mark = " (skipped)" if "skipped" in entry else ""
            table.add_row(
                name,
                entry["position"],
                entry["stream_id"],
                entry["type"] + mark,
                str(entry["version"]),
                str(entry["attempts"]),
                f"{entry['parked_at']:%Y-%m-%d %H:%M:%S}",
                entry["error"][:80],
            )
    console.print(table)
    waiting = sum(found["waiting"] for found in report.values())
    console.print(f"{waiting} parked event(s) waiting for a retry or a skip")


def retry(subscriber: Subscriber, as_json: Json = False) -> None:
    """Apply a subscriber's parked events again (after a fix); exit 1 if some still fail."""
    name = _subscriber(subscriber)
    settings = get_settings()
    result = run(lambda side: retry_parked(name, side, repository(side.store, settings)), settings)
    report_retry(name, result, as_json)


def skip(
    subscriber: Subscriber,
    position: Annotated[str, typer.Argument(help="The parked event's position token")],
    reason: Annotated[str, typer.Option("--reason", help="Why (kept with the event)")] = "",
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation")] = False,
    as_json: Json = False,
) -> None:
    """Give up on one parked event for good: it is never applied; audits list it as skipped."""
    name = _subscriber(subscriber)
    if not yes:
        typer.confirm(
            f"{name} will never apply the event at {position}. Skip it?", abort=True, err=True
        )
    actor = _operator()

    async def work(side: ReadSide) -> bool:
        return await ParkedEvents(side.db).skip(name, position, actor, reason)

    done = run(work)
    if as_json:
        typer.echo(to_json({"subscriber": name, "position": position, "skipped": done}))
    if not done:
        typer.echo(f"error: {name} has no parked event waiting at {position}", err=True)
        raise typer.Exit(2)
    if not as_json:
        console.print(f"{name}: the event at {position} is skipped (by {actor})")


def _operator() -> str:
    """Who is at the terminal, for the record."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name for this uid (a bare container)
        return "unknown"


def register(app: typer.Typer) -> None:
    """Add `parked list|retry|skip` to the CLI."""
    parked = typer.Typer(help="Events subscribers parked after failing.", no_args_is_help=True)
    parked.command("list")(list_parked)
    parked.command("retry")(retry)
    parked.command("skip")(skip)
    app.add_typer(parked, name="parked")
