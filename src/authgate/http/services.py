"""The one way a route reaches the services: the container the app was built around."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from authgate.services import Services


def services_of(connection: Mapping[str, Any]) -> Services:
    """The app's services, from a request or its ASGI scope (a route then takes the one
    service it uses: ``services_of(request).admin``)."""
    services: Services = connection["app"].state.services
    return services
