"""Inventory commands."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse

from command_api import handlers
from command_api.dispatch import CommandDep
from command_api.routes.common import UPDATE_RESPONSES
from command_api.schemas import (
    SKU_PATTERN,
    AdjustStockRequest,
    CommandResponse,
    ReceiveStockRequest,
)
from domain import commands

router = APIRouter(prefix="/api/v1/stock", tags=["stock"])
SkuPath = Annotated[str, Path(pattern=SKU_PATTERN, max_length=64, examples=["MUG-001"])]


@router.post(
    "/{sku}/receive",
    response_model=CommandResponse,
    responses={**UPDATE_RESPONSES, 201: {"description": "The SKU's first receipt"}},
)
async def receive_stock(sku: SkuPath, body: ReceiveStockRequest, run: CommandDep) -> JSONResponse:
    """Record goods received; 201 on the SKU's first receipt, else 200."""
    command = commands.ReceiveStock(sku, body.quantity, body.reference)
    return await run.run(handlers.receive_stock, command)


@router.post("/{sku}/adjust", response_model=CommandResponse, responses=UPDATE_RESPONSES)
async def adjust_stock(sku: SkuPath, body: AdjustStockRequest, run: CommandDep) -> JSONResponse:
    """Correct the on-hand count; never below what is reserved (409)."""
    return await run.run(handlers.adjust_stock, commands.AdjustStock(sku, body.delta, body.reason))
