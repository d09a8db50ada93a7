"""Storage behind the :class:`~harvest.storage.base.Store` protocol."""

from harvest.storage.base import Store
from harvest.storage.memory import MemoryStore
from harvest.storage.sqlite import SqliteStore

__all__ = ["MemoryStore", "SqliteStore", "Store"]
