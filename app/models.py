"""Every model, imported in one place so that metadata (and Alembic) sees them all."""

from app.agents.models import AgentTool
from app.ai.models import ShadowRecommendation
from app.audit.models import AuditCheckpoint, AuditEvent
from app.cases.models import (
    Case,
    Decision,
    Execution,
    ExecutionAttempt,
    Priority,
    Queue,
    Recommendation,
    Status,
    queue_members,
)
from app.controls.models import Pause
from app.escalation.models import EscalationRule, RuleFiring
from app.execution.models import UpstreamNotice
from app.intake.models import ApiClient, IntakeConfigStamp, WebhookReceipt
from app.notifications.models import InAppNotification
from app.oversight.models import Calibration, QaReview
from app.review.models import CaseOpening, ReasonCode
from app.users import ApiToken, User

__all__ = [
    "AgentTool",
    "ApiClient",
    "ApiToken",
    "AuditCheckpoint",
    "AuditEvent",
    "Calibration",
    "Case",
    "CaseOpening",
    "Decision",
    "EscalationRule",
    "Execution",
    "ExecutionAttempt",
    "InAppNotification",
    "IntakeConfigStamp",
    "Pause",
    "Priority",
    "QaReview",
    "Queue",
    "ReasonCode",
    "Recommendation",
    "RuleFiring",
    "ShadowRecommendation",
    "Status",
    "UpstreamNotice",
    "User",
    "WebhookReceipt",
    "queue_members",
]
