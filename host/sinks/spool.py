"""The recorder's local spool: while a PostgreSQL server is out of reach, what the recorder would
have committed goes into a small SQLite file on this machine instead, in order, and is uploaded from
there (oldest first) when the server is back. Nothing is held only in memory while the network is
down, so a long outage neither loses frames nor fills the RAM.

In: `append(items)` with the recorder's queued items (NamedTuples; a `bytes` field goes in a BLOB,
the other fields in JSON). Out: `head(limit)` -> [(seq, item)] oldest first, `drop(upto_seq)` once they
are on the server, `remove()` when it is empty. The file is private to one recorder (one process).
"""
from __future__ import annotations

import json
import os
import sqlite3
import uuid
from pathlib import Path


def default_folder() -> Path:
    env = os.environ.get("HIPLEVEL_SPOOL")
    if env:
        return Path(env)
    import platformdirs
    return platformdirs.user_data_path("hiplevel", appauthor=False) / "spool"


def _json_default(o):
    # numpy scalars and arrays sneak into event dicts from the pipeline
    return o.tolist() if hasattr(o, "tolist") else str(o)


class Spool:
    def __init__(self, kinds: dict[str, type], folder: Path | None = None):
        """kinds: the item classes by name (NamedTuples), to read items back."""
        self.kinds = kinds
        folder = Path(folder) if folder is not None else default_folder()
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"spool-{os.getpid()}-{uuid.uuid4().hex[:8]}.sqlite"
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("CREATE TABLE items (seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, "
                           "fields TEXT NOT NULL, data BLOB)")

    def append(self, items: list) -> None:
        rows = []
        for item in items:
            fields = item._asdict()
            data = next((fields.pop(k) for k, v in list(fields.items()) if isinstance(v, bytes)), None)
            rows.append((type(item).__name__, json.dumps(fields, default=_json_default), data))
        with self._conn:
            self._conn.execute("BEGIN")
            self._conn.executemany("INSERT INTO items (kind, fields, data) VALUES (?, ?, ?)", rows)

    def head(self, limit: int | None = None) -> list[tuple[int, object]]:
        out = []
        for seq, kind, fields, data in self._conn.execute(
                "SELECT seq, kind, fields, data FROM items ORDER BY seq LIMIT ?", (limit or -1,)):
            cls = self.kinds[kind]
            values = json.loads(fields)
            if data is not None:
                values[next(f for f in cls._fields if f not in values)] = bytes(data)
            out.append((seq, cls(**values)))
        return out

    def last_seq(self) -> int:
        return self._conn.execute("SELECT coalesce(max(seq), 0) FROM items").fetchone()[0]

    def drop(self, upto_seq: int) -> None:
        self._conn.execute("DELETE FROM items WHERE seq <= ?", (upto_seq,))

    def __len__(self) -> int:
        return self._conn.execute("SELECT count(*) FROM items").fetchone()[0]

    def remove(self) -> None:
        self._conn.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)
