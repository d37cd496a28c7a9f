"""Logging for ``livecommerce serve``: no log line ever carries a credential.

Access tokens are bearer credentials that last a day, and a WebSocket can only send one in
its URL (``/ws/streams/1?token=<jwt>``), which uvicorn logs on every connect, as it logs the
query of every HTTP request; at trace level it also logs each request's scope. So every
handler the server installs (uvicorn's, and one for the rest of the process) carries
:class:`RedactSecrets`, which rewrites a record before any formatter sees it:

- the value of a ``token`` or ``access_token`` query parameter,
- what follows ``Bearer`` and the value of an ``Authorization`` header,
- and anything shaped like a JWT (three base64url parts, the first starting ``eyJ``),

become ``REDACTED``. The filter is on the handlers, not on loggers, because a handler's
filters also see the records that propagate to it from other loggers.

A Celery worker logs what it is handed too (a message it cannot run, whole; at debug level
every task's arguments), so ``livecommerce worker`` puts the same filter on the handlers
Celery sets up (:func:`redact_every_handler`).
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any

REDACTED = "REDACTED"

_SECRETS = re.compile(
    r"(?P<keep>[?&;](?:access_)?token=|\bbearer\s+)[^\s&#;\"',)\]}]+"
    # Another scheme's credentials (Basic ...): the rest of the header's value.
    r"|(?P<header>\bauthorization:\s*)(?!\s*bearer\s)[^\r\n\"',)\]}]+"
    # A JWT on its own (in a repr of the scope, an exception, a response being logged).
    r"|\beyJ[\w-]+\.[\w-]+\.[\w-]*",
    re.IGNORECASE,
)


def _replace(match: re.Match[str]) -> str:
    return (match.group("keep") or match.group("header") or "") + REDACTED


def redact(text: str) -> str:
    """``text`` with every token and authorization value replaced by ``REDACTED``."""
    return _SECRETS.sub(_replace, text)


def _clean(value: Any) -> Any:
    if isinstance(value, (int, float)) or value is None:
        return value  # keeps %d and %.1f formatting working
    text = value if isinstance(value, str) else str(value)
    cleaned = redact(text)
    return value if cleaned == text else cleaned


class RedactSecrets(logging.Filter):
    """Rewrites a record's message, arguments and traceback without credentials."""

    def filter(self, record: logging.LogRecord) -> bool:
        # Arguments are cleaned where they are, so that formatters which read them (uvicorn's
        # access formatter unpacks its five) still find them.
        if isinstance(record.args, dict):
            record.args = {k: _clean(v) for k, v in record.args.items()}
        elif record.args:
            record.args = tuple(_clean(v) for v in record.args)
        if isinstance(record.msg, str):
            try:
                message = record.getMessage()
            except (TypeError, ValueError):  # the formatter will report the bad record
                message = record.msg
            cleaned = redact(message)
            if cleaned != message:  # the secret was in the format string itself
                record.msg, record.args = cleaned, ()
        elif record.msg is not None:
            record.msg = _clean(record.msg)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def redact_every_handler() -> None:
    """Puts :class:`RedactSecrets` on every handler of every logger configured so far (the
    Celery worker's: it sets up its own handlers, in ``workers/worker.py``'s signals)."""
    loggers = [logging.getLogger()]
    loggers += [
        x for x in logging.Logger.manager.loggerDict.values() if isinstance(x, logging.Logger)
    ]
    for logger in loggers:
        for handler in logger.handlers:
            if not any(isinstance(f, RedactSecrets) for f in handler.filters):
                handler.addFilter(RedactSecrets())


def server_log_config(base: dict[str, Any]) -> dict[str, Any]:
    """uvicorn's logging config ``base`` (``uvicorn.config.LOGGING_CONFIG``) with
    :class:`RedactSecrets` on every handler, and the process's other loggers (the app's,
    SQLAlchemy's...) sent at warning and above through the same filtered handler instead of
    Python's unfiltered last-resort one."""
    config = copy.deepcopy(base)  # uvicorn writes into the dict it is given
    config.setdefault("filters", {})["redact_secrets"] = {"()": f"{__name__}.RedactSecrets"}
    for handler in config.get("handlers", {}).values():
        handler["filters"] = [*handler.get("filters", []), "redact_secrets"]
    config.setdefault("root", {"handlers": ["default"], "level": "WARNING"})
    return config
