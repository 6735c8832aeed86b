"""Storage: engine and sessions, models, migrations."""

from connector.storage.db import Database, upgrade

__all__ = ["Database", "upgrade"]
