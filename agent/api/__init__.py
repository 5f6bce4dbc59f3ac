"""HTTP API: `create_app(settings)` builds the FastAPI app (routers per concern in `routes/`)."""

from agent.api.app import create_app

__all__ = ["create_app"]
