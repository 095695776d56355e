"""Tables, migrations and repositories (the only importer of SQLAlchemy)."""

from authgate.storage.database import Database, Transaction
from authgate.storage.fast_refresh import FastRefresh

__all__ = ["Database", "FastRefresh", "Transaction"]
