"""Web service (``[serve]`` extra): an HTTP/WebSocket API and a browser app over ``Analyzer`` and the video pipeline.

``openfer serve`` runs it; ``create_app`` builds the FastAPI application (for tests or your own ASGI server).
Nothing here is imported by ``import openfer``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from openfer.service.app import create_app
    from openfer.service.config import ServiceConfig

__all__ = ["ServiceConfig", "create_app"]

INSTALL_HINT = "the web service needs the [serve] extra: pip install 'openfer[serve]'"


def __getattr__(name: str):
    if name == "create_app":
        try:
            from openfer.service.app import create_app
        except ImportError as e:
            raise ImportError(f"{INSTALL_HINT} ({e})") from None
        return create_app
    if name == "ServiceConfig":
        from openfer.service.config import ServiceConfig

        return ServiceConfig
    raise AttributeError(f"module 'openfer.service' has no attribute {name!r}")
