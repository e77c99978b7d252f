"""Order commands."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from command_api import handlers
from command_api.dispatch import CommandDep
from command_api.routes.common import CREATE_RESPONSES, UPDATE_RESPONSES
from command_api.schemas import (
    CancelOrderRequest,
    CommandResponse,
    PlaceOrderRequest,
    ShipOrderRequest,
)
from domain import commands

router = APIRouter(prefix="/api/v1/orders", tags=["orders"])


@router.post("", status_code=201, response_model=CommandResponse, responses=CREATE_RESPONSES)
async def place_order(body: PlaceOrderRequest, run: CommandDep) -> JSONResponse:
    """Place an order (status pending); unknown or discontinued SKUs are a 409."""
    return await run.run(handlers.place_order, body.to_command())


@router.post("/{order_id}/cancel", response_model=CommandResponse, responses=UPDATE_RESPONSES)
async def cancel_order(order_id: UUID, body: CancelOrderRequest, run: CommandDep) -> JSONResponse:
    """Cancel an order that is pending or confirmed."""
    return await run.run(handlers.cancel_order, commands.CancelOrder(order_id, body.reason))


@router.post("/{order_id}/ship", response_model=CommandResponse, responses=UPDATE_RESPONSES)
async def ship_order(order_id: UUID, body: ShipOrderRequest, run: CommandDep) -> JSONResponse:
    """Ship a confirmed order."""
    return await run.run(handlers.ship_order, commands.ShipOrder(order_id))
