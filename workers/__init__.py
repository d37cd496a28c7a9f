"""Celery workers: the app (``workers.app``), the tasks (``workers.tasks``), and the
embedded SQLite queue (``workers.embedded``). Tasks are thin: they call the services."""
