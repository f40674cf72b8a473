"""Confidence learned from reviewers: how often a model's recommendations of a case type were
approved as recommended, as a function of the confidence the model reported.

The labels: every recommendation's *first* verdict by a reviewer. ``approve`` (as recommended) is
agreement; ``edit`` and ``reject`` are disagreement. ``escalate`` and ``request_info`` are no verdict
on the recommendation (the case moves on or waits, and its later decision is the label), and a
second approval or a blind assessment is not the first reaction to the recommendation shown.

The fit, per (case type, model), is isotonic: pool-adjacent-violators over the labels sorted by
confidence gives the non-decreasing step function closest (least squares) to the observed
agreement; between two steps the curve is interpolated linearly, outside them it is flat. The
reliability diagram bins the same labels into ten equal-width confidence bins. A periodic job
(`app.oversight.jobs.refresh_calibrations`) refits every curve; with fewer labels than
CALIBRATION_MIN_DECISIONS the curve is kept but not used: the case page, the reviewer API and
escalation rules say "not enough decided cases" instead of a number.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.cases import policy
from app.cases.models import Case, Decision, Recommendation
from app.db import utcnow
from app.oversight.models import Calibration

AGREEMENT, DISAGREEMENT = frozenset({"approve"}), frozenset({"edit", "reject"})
BIN_COUNT = 10
Label = tuple[float, bool]  # (the model's confidence, whether the reviewer approved as recommended)


# --- fitting ---------------------------------------------------------------------------------------------


def fit_isotonic(labels: Iterable[Label]) -> list[dict[str, Any]]:
    """Pool adjacent violators: blocks of rising confidence, each ``{"low", "high", "rate", "count"}``,
    their rates non-decreasing. Equal confidences always share a block."""
    blocks: list[list[float]] = []  # [low, high, agreements, count]
    for confidence, (agreements, count) in sorted(_tallies(labels).items()):
        blocks.append([confidence, confidence, agreements, count])
        while len(blocks) > 1 and blocks[-2][2] / blocks[-2][3] >= blocks[-1][2] / blocks[-1][3]:
            last = blocks.pop()
            blocks[-1][1], blocks[-1][2], blocks[-1][3] = last[1], blocks[-1][2] + last[2], blocks[-1][3] + last[3]
    return [{"low": low, "high": high, "rate": agreements / count, "count": int(count)}
            for low, high, agreements, count in blocks]


def _tallies(labels: Iterable[Label]) -> dict[float, tuple[int, int]]:
    tally: dict[float, list[int]] = defaultdict(lambda: [0, 0])
    for confidence, agreed in labels:
        tally[float(confidence)][0] += int(agreed)
        tally[float(confidence)][1] += 1
    return {confidence: (agreements, count) for confidence, (agreements, count) in tally.items()}


def rate_on(curve: Sequence[dict[str, Any]], confidence: float) -> float | None:
    """The fitted agreement at ``confidence``: the block's rate inside a block, linear between two
    blocks, the nearest block's rate outside them; None for an empty curve."""
    if not curve:
        return None
    xs = [x for block in curve for x in (block["low"], block["high"])]
    ys = [block["rate"] for block in curve for _ in (0, 1)]
    if confidence <= xs[0]:
        return ys[0]
    if confidence >= xs[-1]:
        return ys[-1]
    i = bisect.bisect_right(xs, confidence)
    x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
    return y0 if x1 == x0 else y0 + (y1 - y0) * (confidence - x0) / (x1 - x0)


def reliability_bins(labels: Iterable[Label], count: int = BIN_COUNT) -> list[dict[str, Any]]:
    """The reliability diagram: ``count`` equal-width confidence bins, each with its number of labels,
    mean confidence and observed agreement (both None when empty). A confidence of 1 is in the last bin."""
    sums = [[0.0, 0, 0] for _ in range(count)]  # confidence sum, agreements, labels
    for confidence, agreed in labels:
        row = sums[min(int(confidence * count), count - 1)]
        row[0] += confidence
        row[1] += int(agreed)
        row[2] += 1
    return [{"low": i / count, "high": (i + 1) / count, "count": n,
             "mean_confidence": total / n if n else None, "agreement": agreements / n if n else None}
            for i, (total, agreements, n) in enumerate(sums)]


# --- the labels and the stored curves --------------------------------------------------------------------


def decided_labels(session: Session) -> dict[tuple[str, str], list[Label]]:
    """(case type, model) → the label of every recommendation a reviewer gave a verdict on."""
    rows = session.execute(
        select(Decision.recommendation_id, Decision.kind, Case.case_type, Recommendation.model,
               Recommendation.confidence)
        .join(Recommendation, Recommendation.id == Decision.recommendation_id)
        .join(Case, Case.id == Recommendation.case_id)
        .where(Decision.kind.in_(sorted(AGREEMENT | DISAGREEMENT)), policy.standing())
        .order_by(Decision.id))
    seen: set[int] = set()
    labels: dict[tuple[str, str], list[Label]] = defaultdict(list)
    for recommendation_id, kind, case_type, model, confidence in rows:
        if recommendation_id in seen:
            continue  # a later verdict (a second approver rejecting) is not the reaction to the AI
        seen.add(recommendation_id)
        labels[case_type, model].append((float(confidence), kind in AGREEMENT))
    return dict(labels)


def refresh(session: Session) -> int:
    """Refit the curve of every (case type, model) with decided cases; flushed, not committed.
    Returns how many curves were fitted."""
    stored = {(c.case_type, c.model): c for c in session.scalars(select(Calibration))}
    now = utcnow()
    groups = decided_labels(session)
    for (case_type, model), labels in groups.items():
        row = stored.get((case_type, model)) or Calibration(case_type=case_type, model=model)
        row.decisions, row.agreements = len(labels), sum(agreed for _, agreed in labels)
        row.curve, row.bins, row.fitted_at = fit_isotonic(labels), reliability_bins(labels), now
        session.add(row)
    session.flush()
    return len(groups)


def minimum_decisions() -> int:
    return int(current_app.config["CALIBRATION_MIN_DECISIONS"])


@dataclass(frozen=True)
class CalibratedAgreement:
    """What the calibration says of one recommendation."""

    rate: float | None  # None: not enough decided cases to say
    decisions: int
    minimum: int
    fitted_at: datetime | None

    @property
    def label(self) -> str:
        if self.rate is None:
            return f"not enough decided cases ({self.decisions} of {self.minimum})"
        return f"{self.rate:.0%} approved as recommended ({self.decisions} decided cases)"


def agreement_for(session: Session, case_type: str, model: str, confidence: float) -> CalibratedAgreement:
    """The calibrated agreement rate of a recommendation, or why there is none."""
    minimum = minimum_decisions()
    row = session.scalar(select(Calibration).where(Calibration.case_type == case_type, Calibration.model == model))
    if row is None:
        return CalibratedAgreement(None, 0, minimum, None)
    rate = rate_on(row.curve, confidence) if row.decisions >= minimum else None
    return CalibratedAgreement(rate, row.decisions, minimum, row.fitted_at)


def agreement_of(session: Session, rec: Recommendation, case_type: str) -> CalibratedAgreement:
    return agreement_for(session, case_type, rec.model, float(rec.confidence))


def all_calibrations(session: Session) -> list[Calibration]:
    return list(session.scalars(select(Calibration).order_by(Calibration.case_type, Calibration.model)))
