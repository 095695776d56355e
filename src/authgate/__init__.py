"""authgate: a self-hosted token-authentication server."""

__version__ = "0.1.0"
