"""Product: register, rename, reprice, discontinue."""

from __future__ import annotations

from decimal import Decimal

import pytest

from domain.catalog import Product
from domain.errors import InvalidValue, ProductDiscontinued
from domain.values import product_id
from tests.unit.helpers import given, new_events


def registered(sku: str = "mug-1", price: str = "9.50") -> Product:
    """A product registered in the past."""
    return given(Product.register(sku, "Mug", "", Decimal(price), "kitchen"))  # type: ignore[return-value]


def test_register_derives_the_id_from_the_normalised_sku() -> None:
    product = Product.register("mug-1", "Mug", "A mug", Decimal("9.5"), "kitchen")
    assert product.id == product_id("MUG-1") == product_id("mug-1")
    assert new_events(product) == [
        (
            "ProductRegistered",
            {
                "sku": "MUG-1",
                "name": "Mug",
                "description": "A mug",
                "price": "9.50",
                "category": "kitchen",
                "unit": "each",
            },
        )
    ]


@pytest.mark.parametrize("price", ["0", "-1.00", "1.001", "NaN", "Infinity"])
def test_register_refuses_a_price_that_is_not_positive_money(price: str) -> None:
    with pytest.raises(InvalidValue):
        Product.register("mug-1", "Mug", "", Decimal(price), "kitchen")


@pytest.mark.parametrize("sku", ["", " ", "-leading-dash", "has space", "x" * 65, "ünï"])
def test_register_refuses_a_malformed_sku(sku: str) -> None:
    with pytest.raises(InvalidValue):
        Product.register(sku, "Mug", "", Decimal("1.00"), "kitchen")


def test_rename_and_reprice_record_the_new_values() -> None:
    product = registered()
    product.rename("Big mug")
    product.reprice(Decimal("12"))
    assert new_events(product) == [
        ("ProductRenamed", {"name": "Big mug"}),
        ("ProductRepriced", {"price": "12.00"}),
    ]
    assert (product.name, product.price, product.version) == ("Big mug", Decimal("12.00"), 3)


def test_a_discontinued_product_accepts_no_changes() -> None:
    product = registered()
    product.discontinue("end of line")
    assert new_events(product) == [("ProductDiscontinued", {"reason": "end of line"})]
    for change in (
        lambda: product.rename("x"),
        lambda: product.reprice(Decimal("1")),
        lambda: product.discontinue("again"),
    ):
        with pytest.raises(ProductDiscontinued):
            change()
    assert new_events(product) == []
