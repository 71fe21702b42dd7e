"""Severity levels of the host log (the WIT `log.level`).

Write through the run's `Io` (`io.log(Level.INFO, "...")`); the host attaches
the run's `source`, `collector` and `run_id` fields and redacts configured
secret values.
"""

from __future__ import annotations

import enum


class Level(enum.IntEnum):
    """Severity of a log message."""

    TRACE = 0
    DEBUG = 1
    INFO = 2
    WARN = 3
    ERROR = 4
