"""The scheduler that says it is alive, and a worker that does not outlive its scheduler.

``Scheduler`` is Celery's persistent scheduler that also records a heartbeat
(``livecommerce.jobs.record_heartbeat``) every ``heartbeat_seconds``, from the loop that
sends the periodic jobs: while that loop runs the heartbeat is fresh, and once it stops
(the process killed, or stuck) ``/readyz`` sees it go stale.

``BeatWatch`` is a worker bootstep for ``livecommerce worker --beat``: Celery runs that
scheduler as a child process of the worker and carries on without a word when it dies.
The watch notices, logs it as critical and shuts the worker down warm with exit status
``EX_SOFTWARE`` (70), so that whatever supervises the worker restarts both. The worker
``serve`` embeds is the exception: nothing would restart it, and it still works the
fulfilment jobs, so it only reports the death and keeps working (``/readyz`` says stale).
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from celery import bootsteps
from celery.beat import PersistentScheduler
from celery.worker import state

from livecommerce import jobs
from livecommerce.config import get_settings

log = logging.getLogger("livecommerce.workers.beat")

WATCH_SECONDS = 1.0  # how often the worker looks at its scheduler process
EMBEDDED_HOSTNAME = "embedded@"  # the worker ``serve`` starts (livecommerce/cli.py)


class Scheduler(PersistentScheduler):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._settings = get_settings()
        self._every = jobs.heartbeat_seconds(self._settings)
        self._next_beat = 0.0
        super().__init__(*args, **kwargs)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        interval: float = super().tick(*args, **kwargs)
        now = time.time()
        if now >= self._next_beat:
            try:
                jobs.record_heartbeat(self._settings, now)
            except Exception as exc:
                # Not raised: the periodic jobs still go out. /readyz will say stale.
                log.warning("scheduler heartbeat not recorded: %s", exc)
            self._next_beat = now + self._every
        # Wake in time for the next heartbeat even when no job is due before it.
        return max(0.0, min(interval, self._next_beat - time.time()))


class BeatWatch(bootsteps.StartStopStep):
    """Stops the worker when the scheduler it embeds (``--beat``) has died."""

    requires = ("celery.worker.components:Timer", "celery.worker.components:Beat")

    def __init__(self, w: Any, **kwargs: Any) -> None:
        super().__init__(w, **kwargs)
        self._timer: Any = None

    def start(self, w: Any) -> None:
        if getattr(w, "beat", None) is None:
            return  # no embedded scheduler in this worker
        self._timer = w.timer.call_repeatedly(WATCH_SECONDS, self.check, (w,))

    def stop(self, w: Any) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def check(self, w: Any) -> None:
        beat = w.beat
        if beat is None or state.should_stop is not None or _alive(beat):
            return
        if str(getattr(w, "hostname", "")).startswith(EMBEDDED_HOSTNAME):
            log.critical(
                "the scheduler (celery beat) in worker %s has died (exit code %s): periodic "
                "jobs have stopped; restart livecommerce serve",
                os.getpid(),
                getattr(beat, "exitcode", None),
            )
            self.stop(w)  # said once; the jobs the API sends are still worked
            return
        log.critical(
            "the scheduler (celery beat) in worker %s has died (exit code %s): periodic jobs "
            "have stopped; this worker shuts down so that it is restarted with one",
            os.getpid(),
            getattr(beat, "exitcode", None),
        )
        state.should_stop = os.EX_SOFTWARE


def _alive(beat: Any) -> bool:
    alive = getattr(beat, "is_alive", None)
    return True if alive is None else bool(alive())
