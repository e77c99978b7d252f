"""Dependencies of the command API routes, resolved from the app's wiring."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from core.settings import Settings
from eventstore.repository import Repository


async def settings_dep(request: Request) -> Settings:
    """This app's settings."""
    settings: Settings = request.app.state.settings
    return settings


async def repository_dep(request: Request) -> Repository:
    """The repository over this app's event store."""
    repo: Repository = request.app.state.repository
    return repo


RepositoryDep = Annotated[Repository, Depends(repository_dep)]
SettingsDep = Annotated[Settings, Depends(settings_dep)]
