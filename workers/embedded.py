"""The embedded job queue: kombu's SQLAlchemy transport on a SQLite file, tuned for it.

No service to install: the API process writes jobs into ``jobs.db`` in the data dir and the
worker that ``livecommerce serve`` starts reads them. Two changes to kombu's transport:
SQLite waits for its write lock instead of failing at once, and the worker polls every
0.2 s instead of every second (a paid order should not wait for a timer).
"""

from __future__ import annotations

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
