"""ASGI entry point: `uvicorn query_api.main:app --port 8001`."""

from query_api.app import create_app

app = create_app()
