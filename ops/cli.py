"""The `ordertrail` command line: migrations, tokens and the one-machine dev stack."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from core.auth import SCOPES, mint_token
from core.settings import get_settings
from ops import admin
from ops.devstack import DevOptions, run_dev, stored_secret

DEFAULT_STATE_DIR = Path(".ordertrail")

app = typer.Typer(
    name="ordertrail",
    help="Operate ordertrail: migrations, tokens and a local dev stack.",
    no_args_is_help=True,
    add_completion=False,
)

StateDir = Annotated[
    Path, typer.Option("--state-dir", help="Where the dev stack keeps its data and secrets.")
]


@app.command()
def migrate(
    revision: Annotated[str, typer.Option(help="Upgrade to this revision.")] = "head",
    downgrade: Annotated[
        str | None, typer.Option(metavar="REV", help="Downgrade to REV instead.")
    ] = None,
) -> None:
    """Apply (or with --downgrade, revert) schema migrations on DATABASE_URL."""
    from ops import migrate as migrations  # loads Alembic only when migrating

    if downgrade is not None and revision != "head":
        raise typer.BadParameter("give either --revision or --downgrade", param_hint="--downgrade")
    url = _database_url()
    if downgrade is None:
        migrations.upgrade(url, revision)
    else:
        migrations.downgrade(url, downgrade)


@app.command()
def token(
    sub: Annotated[str, typer.Option("--sub", metavar="NAME", help="Token subject.")],
    scope: Annotated[
        list[str] | None,
        typer.Option("--scope", help=f"Repeatable; default all of: {', '.join(SCOPES)}."),
    ] = None,
    ttl: Annotated[int, typer.Option("--ttl", min=1, help="Lifetime in seconds.")] = 3600,
    state_dir: StateDir = DEFAULT_STATE_DIR,
) -> None:
    """Print a JWT signed with JWT_SECRET (else the secret `ordertrail dev` saved)."""
    secret = os.environ.get("JWT_SECRET") or stored_secret(state_dir)
    if not secret:
        typer.echo(
            f"error: JWT_SECRET is not set and {state_dir / 'dev.env'} has none "
            "(run `ordertrail dev` once, or export JWT_SECRET)",
            err=True,
        )
        raise typer.Exit(2)
    try:
        typer.echo(mint_token(secret, sub, scope or list(SCOPES), ttl_seconds=ttl))
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--scope") from exc


@app.command()
def dev(
    host: Annotated[str, typer.Option(help="Command API bind address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Command API port.")] = 8000,
    query_port: Annotated[int, typer.Option(help="Query API port.")] = 8001,
    state_dir: StateDir = DEFAULT_STATE_DIR,
) -> None:
    """Run the whole system locally (services, migrations, both APIs, a worker) until Ctrl-C.

    Uses DATABASE_URL, MONGODB_URL and REDIS_URL when set; otherwise local or embedded servers.
    """
    options = DevOptions(host=host, port=port, state_dir=state_dir, query_port=query_port)
    raise typer.Exit(run_dev(options))


def _database_url() -> str:
    """DATABASE_URL as the settings read it, or exit 2 explaining what is missing."""
    try:
        return get_settings().database_url
    except ValidationError as exc:
        typer.echo(f"error: invalid settings:\n{exc}", err=True)
        raise typer.Exit(2) from exc


admin.register(app)
