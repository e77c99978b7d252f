"""The pure domain model: aggregates, events and rules. No I/O, no infrastructure."""
