"""The state store (SQLite by default, PostgreSQL by URL)."""

from euca.store.db import Store, Tx

__all__ = ["Store", "Tx"]
