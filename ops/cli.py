"""The `ordertrail` command line: migrations, tokens and the one-machine dev stack."""

from __future__ import annotations

import os
from importlib import metadata
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from core.auth import SCOPES, mint_token
from core.settings import get_settings
from ops import admin, parked
from ops.errors import run_cli, settings_error

DEFAULT_STATE_DIR = Path(".ordertrail")
# The subject of tokens minted with the dev stack's own secret when --sub is not given.
DEV_SUBJECT = "dev"

app = typer.Typer(
    name="ordertrail",
    help=(
        "Operate ordertrail: migrations, tokens, status, rebuilds and a local dev stack. "
        "Exit codes: 0 done, 1 holes found or events still failing, 2 bad arguments or "
        "settings, 3 a dependency is unreachable, 4 an unexpected error."
    ),
    no_args_is_help=True,
    add_completion=False,
    # Never print local variables with a traceback: they can hold secrets and tokens.
    pretty_exceptions_show_locals=False,
)


def main() -> None:
    """The `ordertrail` executable: the CLI with one-line errors and meaningful exit codes."""
    run_cli(app)


def _version(show: bool) -> None:
    if show:
        typer.echo(f"ordertrail {package_version()}")
        raise typer.Exit()


def package_version() -> str:
    """The installed distribution's version (the source tree's when run uninstalled)."""
    try:
        return metadata.version("ordertrail")
    except metadata.PackageNotFoundError:
        return "0+unknown"


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Operate ordertrail."""


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
    sub: Annotated[
        str | None,
        typer.Option(
            "--sub",
            metavar="NAME",
            help=f"Token subject (default with the dev stack's secret: {DEV_SUBJECT}).",
        ),
    ] = None,
    scope: Annotated[
        list[str] | None,
        typer.Option("--scope", help=f"Repeatable; default all of: {', '.join(SCOPES)}."),
    ] = None,
    ttl: Annotated[int, typer.Option("--ttl", min=1, help="Lifetime in seconds.")] = 3600,
    state_dir: StateDir = DEFAULT_STATE_DIR,
) -> None:
    """Print a JWT signed with JWT_SECRET (else the secret `ordertrail dev` saved)."""
    from ops.devstack import stored_secret  # the dev stack's modules load only when needed

    secret = os.environ.get("JWT_SECRET")
    if secret is None:
        secret = stored_secret(state_dir)
        sub = sub or DEV_SUBJECT  # a dev token: who holds it matters little
    if sub is None:
        # A deployment's secret: its tokens should say whom they were given to.
        typer.echo("error: name the token's holder with --sub (JWT_SECRET is set)", err=True)
        raise typer.Exit(2)
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
    reset: Annotated[
        bool,
        typer.Option(
            "--reset",
            help="Delete the dev stack's own data first (its databases; never a URL you set).",
        ),
    ] = False,
) -> None:
    """Run the whole system locally (services, migrations, both APIs, a worker) until Ctrl-C.

    Uses DATABASE_URL, MONGODB_URL and REDIS_URL when set; otherwise local or embedded servers.
    """
    from ops.devstack import DevOptions, run_dev

    options = DevOptions(
        host=host, port=port, state_dir=state_dir, query_port=query_port, reset=reset
    )
    raise typer.Exit(run_dev(options))


def _database_url() -> str:
    """DATABASE_URL as the settings read it, or exit 2 explaining what is missing."""
    try:
        return get_settings().database_url
    except ValidationError as exc:
        raise typer.Exit(settings_error(exc)) from None


admin.register(app)
parked.register(app)
