"""Fixtures of the query API tests live in tests/conftest.py (shared with the ops tests)."""
