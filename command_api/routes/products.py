"""Catalog commands."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from command_api import handlers
from command_api.dispatch import CommandDep
from command_api.routes.common import CREATE_RESPONSES, UPDATE_RESPONSES
from command_api.schemas import (
    CommandResponse,
    DiscontinueProductRequest,
    RegisterProductRequest,
    RenameProductRequest,
    RepriceProductRequest,
)
from domain import commands

router = APIRouter(prefix="/api/v1/products", tags=["products"])
_common: dict[str, Any] = {"response_model": CommandResponse}


@router.post("", status_code=201, responses=CREATE_RESPONSES, **_common)
async def register_product(body: RegisterProductRequest, run: CommandDep) -> JSONResponse:
    """Register a product; its id is the UUIDv5 of its SKU, so a taken SKU is a 409."""
    return await run.run(handlers.register_product, body.to_command())


@router.post("/{product_id}/rename", responses=UPDATE_RESPONSES, **_common)
async def rename_product(
    product_id: UUID, body: RenameProductRequest, run: CommandDep
) -> JSONResponse:
    """Rename a product."""
    return await run.run(handlers.rename_product, commands.RenameProduct(product_id, body.name))


@router.post("/{product_id}/reprice", responses=UPDATE_RESPONSES, **_common)
async def reprice_product(
    product_id: UUID, body: RepriceProductRequest, run: CommandDep
) -> JSONResponse:
    """Set a product's unit price."""
    command = commands.RepriceProduct(product_id, body.price)
    return await run.run(handlers.reprice_product, command)


@router.post("/{product_id}/discontinue", responses=UPDATE_RESPONSES, **_common)
async def discontinue_product(
    product_id: UUID, body: DiscontinueProductRequest, run: CommandDep
) -> JSONResponse:
    """Withdraw a product from sale; it accepts no further changes."""
    command = commands.DiscontinueProduct(product_id, body.reason)
    return await run.run(handlers.discontinue_product, command)
