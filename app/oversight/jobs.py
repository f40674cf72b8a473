"""Periodic job of the oversight package: ``refresh_calibrations``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis import Redis

from app.extensions import db
from app.jobs import job, run_exclusive
from app.oversight import calibration


@dataclass(frozen=True)
class Refreshed:
    curves: int


def _refresh(_: Redis) -> Refreshed:
    curves = calibration.refresh(db.session)
    db.session.commit()
    return Refreshed(curves)


@job
def refresh_calibrations() -> dict[str, Any]:
    """Refit every confidence calibration from the decided cases (one run at a time: two would
    insert the same new curve)."""
    return run_exclusive("calibration-refresh", _refresh)
