"""The embedded job queue: kombu's SQLAlchemy transport on a SQLite file, tuned for it.

No service to install: the API process writes jobs into ``jobs.db`` in the data dir and the
worker that ``livecommerce serve`` starts reads them. Two changes to kombu's transport:
SQLite waits for its write lock instead of failing at once, and the worker polls every
0.2 s instead of every second (a paid order should not wait for a timer).
"""

from __future__ import annotations

import contextlib
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from kombu.transport import sqlalchemy as kombu_sqla
from sqlalchemy import create_engine, event


def _pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the worker read while the API writes; a lock wait replaces "database locked".
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


class Channel(kombu_sqla.Channel):
    def _engine_from_config(self) -> Any:
        url = self.connection.client.hostname
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _pragmas)
        return engine


class Transport(kombu_sqla.Transport):
    Channel = Channel
    polling_interval = 0.2


def prune(url: str, older_than: timedelta) -> int:
    """Delete delivered messages older than ``older_than`` from the SQLite queue.

    kombu's transport keeps every delivered message (``visible = 0``) for good; the queue
    file would otherwise grow by every job ever run. kombu stamps messages in local time.
    """
    path = url.split("///", 1)[1] if "///" in url else url
    if not Path(path).exists():
        return 0
    cutoff = (datetime.now() - older_than).strftime("%Y-%m-%d %H:%M:%S")
    with contextlib.closing(sqlite3.connect(path, timeout=30)) as conn, conn:
        try:
            done = conn.execute(
                "DELETE FROM kombu_message WHERE visible = 0 AND timestamp < ?", (cutoff,)
            )
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return 0
            raise
        return done.rowcount
