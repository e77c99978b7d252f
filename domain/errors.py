"""Domain errors: a command broke a business rule."""


class DomainError(Exception):
    """A command was refused because it breaks a rule of the domain."""

    code = "domain_rule"


class NotFound(DomainError):
    """The aggregate a command names does not exist."""

    code = "not_found"


class AlreadyExists(DomainError):
    """The aggregate a command would create exists already (e.g. a SKU is taken)."""

    code = "already_exists"


class ProductDiscontinued(DomainError):
    """A discontinued product accepts no changes and cannot be ordered."""

    code = "product_discontinued"


class UnknownProduct(DomainError):
    """An order names a SKU that is not in the catalog."""

    code = "unknown_product"


class InsufficientStock(DomainError):
    """The adjustment would take stock below what is reserved (or below zero)."""

    code = "insufficient_stock"


class InvalidOrderTransition(DomainError):
    """The order's status does not allow this command."""

    code = "invalid_order_transition"


class LimitExceeded(DomainError):
    """The command would take a total (an order's, stock on hand) past its domain limit."""

    code = "limit_exceeded"


class InvalidValue(DomainError):
    """A value breaks a domain invariant (a non-positive price or quantity, ...)."""

    code = "invalid_value"
