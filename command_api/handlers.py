"""Command handlers: load the aggregate, let the domain decide, append (via the repository)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any, TypeVar
from uuid import UUID

from domain import commands
from domain.catalog import Product
from domain.errors import (
    AlreadyExists,
    DomainError,
    NotFound,
    ProductDiscontinued,
    UnknownProduct,
)
from domain.inventory import StockItem
from domain.orders import Order
from domain.values import OrderLine, normalize_sku, product_id, stock_item_id
from eventstore.cache import Loaded
from eventstore.repository import AssumptionFailed, Context, Outcome, Repository

C = TypeVar("C")
Handler = Callable[[Any, Repository, Context], Awaitable[Outcome]]
T = TypeVar("T")


def existing(aggregate: T | None, what: str) -> T:
    """The aggregate, or NotFound."""
    if aggregate is None:
        raise NotFound(f"{what} not found")
    return aggregate


async def register_product(
    cmd: commands.RegisterProduct, repo: Repository, ctx: Context
) -> Outcome:
    """Register a product; the SKU decides its id, so a taken SKU is a conflict."""

    def decide(product: Product | None) -> Product:
        if product is not None:
            raise AlreadyExists(f"SKU {product.sku} is already registered")
        return Product.register(
            cmd.sku, cmd.name, cmd.description, cmd.price, cmd.category, cmd.unit
        )

    return await repo.execute(Product, product_id(cmd.sku), decide, ctx, likely_new=True)


async def rename_product(cmd: commands.RenameProduct, repo: Repository, ctx: Context) -> Outcome:
    """Rename a product."""

    def decide(product: Product | None) -> Product:
        existing(product, "product").rename(cmd.name)
        return existing(product, "product")

    return await repo.execute(Product, cmd.product_id, decide, ctx)


async def reprice_product(cmd: commands.RepriceProduct, repo: Repository, ctx: Context) -> Outcome:
    """Set a product's price."""

    def decide(product: Product | None) -> Product:
        existing(product, "product").reprice(cmd.price)
        return existing(product, "product")

    return await repo.execute(Product, cmd.product_id, decide, ctx)


async def discontinue_product(
    cmd: commands.DiscontinueProduct, repo: Repository, ctx: Context
) -> Outcome:
    """Withdraw a product from sale."""

    def decide(product: Product | None) -> Product:
        existing(product, "product").discontinue(cmd.reason)
        return existing(product, "product")

    return await repo.execute(Product, cmd.product_id, decide, ctx)


async def receive_stock(cmd: commands.ReceiveStock, repo: Repository, ctx: Context) -> Outcome:
    """Receive goods for a registered SKU, opening its stock record on the first receipt."""
    sku = normalize_sku(cmd.sku)
    if not await repo.exists(Product, product_id(sku)):
        raise NotFound(f"product with SKU {sku} not found")

    def decide(item: StockItem | None) -> StockItem:
        item = item or StockItem.open(sku)
        item.receive(cmd.quantity, cmd.reference)
        return item

    return await repo.execute(StockItem, stock_item_id(sku), decide, ctx)


async def adjust_stock(cmd: commands.AdjustStock, repo: Repository, ctx: Context) -> Outcome:
    """Correct a SKU's on-hand count."""

    def decide(item: StockItem | None) -> StockItem:
        existing(item, f"stock of SKU {cmd.sku}").adjust(cmd.delta, cmd.reason)
        return existing(item, "stock")

    return await repo.execute(StockItem, stock_item_id(cmd.sku), decide, ctx)


async def price_lines(
    lines: tuple[commands.RequestedLine, ...], repo: Repository
) -> list[OrderLine]:
    """Each requested line with the catalog's current unit price; unknown or discontinued fail."""
    loaded = await asyncio.gather(*(repo.get(Product, product_id(line.sku)) for line in lines))
    return priced(lines, loaded)


def priced(
    lines: tuple[commands.RequestedLine, ...], products: Sequence[Loaded[Product] | None]
) -> list[OrderLine]:
    """The lines at the given products' prices; unknown or discontinued products fail."""
    result = []
    for line, found in zip(lines, products, strict=True):
        if found is None:
            raise UnknownProduct(f"SKU {normalize_sku(line.sku)} is not in the catalog")
        if found.aggregate.discontinued:
            raise ProductDiscontinued(f"SKU {found.aggregate.sku} is discontinued")
        result.append(OrderLine(found.aggregate.sku, line.quantity, found.aggregate.price))
    return result


def quoted(
    lines: tuple[commands.RequestedLine, ...], repo: Repository
) -> tuple[list[OrderLine], dict[UUID, int]] | None:
    """The lines priced from cached products, and the versions priced at; None if any is not
    cached or would be refused (a refusal is only ever made on the stored state)."""
    products = [repo.peek(Product, product_id(line.sku)) for line in lines]
    if any(found is None for found in products):
        return None
    try:
        lines_at = priced(lines, products)
    except DomainError:
        return None
    return lines_at, {p.aggregate.id: p.aggregate.version for p in products if p is not None}


async def place_order(cmd: commands.PlaceOrder, repo: Repository, ctx: Context) -> Outcome:
    """Place an order at current catalog prices; fulfilment follows asynchronously.

    Prices come from cached products when every line's is cached: the append then checks, in
    the same statement, that none of them has changed since (one round trip in all). If one
    has, the order is priced again from the store.
    """

    def place(lines: list[OrderLine]) -> Callable[[Order | None], Order]:
        def decide(order: Order | None) -> Order:
            if order is not None:
                raise AlreadyExists(f"order {cmd.order_id} exists")
            return Order.place(cmd.customer_id, lines, id=cmd.order_id)

        return decide

    if (quote := quoted(cmd.lines, repo)) is not None:
        lines, versions = quote
        try:
            checked = replace(ctx, unchanged=versions)
            return await repo.execute(Order, cmd.order_id, place(lines), checked, likely_new=True)
        except AssumptionFailed:
            pass  # a price (or the catalog) moved on: price again from the store
    lines = await price_lines(cmd.lines, repo)
    return await repo.execute(Order, cmd.order_id, place(lines), ctx, likely_new=True)


async def cancel_order(cmd: commands.CancelOrder, repo: Repository, ctx: Context) -> Outcome:
    """Cancel a pending or confirmed order."""

    def decide(order: Order | None) -> Order:
        existing(order, "order").cancel(cmd.reason)
        return existing(order, "order")

    return await repo.execute(Order, cmd.order_id, decide, ctx)


async def ship_order(cmd: commands.ShipOrder, repo: Repository, ctx: Context) -> Outcome:
    """Ship a confirmed order."""

    def decide(order: Order | None) -> Order:
        existing(order, "order").ship()
        return existing(order, "order")

    return await repo.execute(Order, cmd.order_id, decide, ctx)
