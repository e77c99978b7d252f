"""ASGI entry point: `uvicorn command_api.main:app`."""

from command_api.app import create_app

app = create_app()
