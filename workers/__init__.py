"""Workers: dramatiq on Redis, catch-up runners with leases, the order fulfilment process."""
