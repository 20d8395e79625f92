"""The HTTP API (``engram serve``): ``create_app(settings)`` builds the FastAPI app."""

from .app import create_app

__all__ = ["create_app"]
