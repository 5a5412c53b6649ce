"""Shelf's log lines: one JSON object a line on stderr, for the API and the jobs alike.

Every logger under ``shelf`` writes through one handler; a record's ``fields`` (``extra=``) are
merged into its line, so a request's line carries its id, method, path and status.
"""

from __future__ import annotations

import logging
import sys

import orjson


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {"ts": round(record.created, 3), "level": record.levelname, "logger": record.name}
        line["msg"] = record.getMessage()
        line.update(getattr(record, "fields", {}))
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(line).decode()


def configure_logging(level: str) -> None:
    root = logging.getLogger("shelf")
    if not any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
