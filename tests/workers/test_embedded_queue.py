"""The embedded SQLite job queue: real kombu messages, and pruning what was delivered."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

from livecommerce.config import Settings
from workers.app import make_celery
from workers.embedded import prune


def test_delivered_jobs_older_than_the_cutoff_are_pruned(tmp_path: Path) -> None:
    """Waiting jobs and recently delivered ones stay; old delivered ones go."""
    settings = Settings(data_dir=tmp_path, task_queue="prune-test", _env_file=None)
    app = make_celery(settings)
    for n in range(4):
        app.send_task("livecommerce.fulfil_order", args=[n])
    app.close()
    db = tmp_path / "jobs.db"
    old = (datetime.now() - timedelta(days=2)).strftime("%Y-%m-%d %H:%M:%S")
    with sqlite3.connect(db) as conn:
        ids = [row[0] for row in conn.execute("SELECT id FROM kombu_message ORDER BY id")]
        assert len(ids) == 4
        conn.execute("UPDATE kombu_message SET visible = 0 WHERE id IN (?, ?)", ids[:2])
        conn.execute("UPDATE kombu_message SET timestamp = ? WHERE id IN (?, ?)", (old, *ids[1:3]))
    # ids[0]: delivered recently; ids[1]: delivered long ago; ids[2]: old but still waiting.
    assert prune(settings.resolved_broker_url, timedelta(days=1)) == 1
    with sqlite3.connect(db) as conn:
        left = [row[0] for row in conn.execute("SELECT id FROM kombu_message ORDER BY id")]
    assert left == [ids[0], ids[2], ids[3]]
    assert prune(f"sqlite:///{tmp_path / 'missing.db'}", timedelta(days=1)) == 0
