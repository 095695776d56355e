"""Tables, migrations and repositories (the only importer of SQLAlchemy)."""

from authgate.storage.database import Database, Transaction

__all__ = ["Database", "Transaction"]
