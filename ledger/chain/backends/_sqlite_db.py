"""A py-evm key-value database persisted in one SQLite file.

py-evm keeps blocks, receipts and state tries in a flat key -> value store
(``eth.abc.DatabaseAPI``). This store keeps every pair in memory, so the EVM
runs at in-memory speed, and writes the pairs that changed to SQLite when
:meth:`SQLiteKV.flush` is called — the embedded backend flushes after every
mined block, so the file always holds whole blocks. WAL mode lets another
process open the same file and read a consistent copy while a run goes on.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from eth.db.backends.base import BaseDB

from ...errors import ChainDataError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
"""


class SQLiteKV(BaseDB):
    """py-evm ``DatabaseAPI`` over an SQLite file, with an in-memory copy."""

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self.path = path
        self.read_only = read_only
        if read_only and not path.exists():
            raise ChainDataError(f"no chain database at {path}")
        uri = f"file:{path}?mode=ro" if read_only else f"file:{path}"
        try:
            self._conn = sqlite3.connect(uri, uri=True, isolation_level=None)
            if not read_only:
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute("PRAGMA synchronous=NORMAL")
                self._conn.executescript(_SCHEMA)
            self._mem: dict[bytes, bytes] = dict(self._conn.execute("SELECT k, v FROM kv"))
        except sqlite3.DatabaseError as exc:
            raise ChainDataError(f"chain database {path} is unreadable: {exc}") from exc
        self._dirty: dict[bytes, bytes | None] = {}

    # -- DatabaseAPI ---------------------------------------------------------
    def __getitem__(self, key: bytes) -> bytes:
        return self._mem[key]

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self._mem[key] = value
        self._dirty[key] = value

    def __delitem__(self, key: bytes) -> None:
        del self._mem[key]
        self._dirty[key] = None

    def _exists(self, key: bytes) -> bool:
        return key in self._mem

    # -- persistence -----------------------------------------------------------
    def flush(self) -> None:
        """Write every changed pair to the file in one SQLite transaction."""
        if not self._dirty or self.read_only:
            self._dirty.clear()
            return
        puts = [(k, v) for k, v in self._dirty.items() if v is not None]
        dels = [(k,) for k, v in self._dirty.items() if v is None]
        with self._conn:  # one transaction: all of a block or none of it
            self._conn.execute("BEGIN")
            self._conn.executemany("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", puts)
            self._conn.executemany("DELETE FROM kv WHERE k = ?", dels)
        self._dirty.clear()

    def get_meta(self, key: str) -> str | None:
        row = self._conn.execute("SELECT v FROM meta WHERE k = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self._conn.execute("INSERT OR REPLACE INTO meta (k, v) VALUES (?, ?)", (key, value))

    def close(self) -> None:
        self.flush()
        self._conn.close()
