"""Every model, imported in one place so that metadata (and Alembic) sees them all."""

from app.audit.models import AuditEvent
from app.auth.models import ApiToken, Notification, Role, User, queue_members
from app.cases.models import Case, Decision, Execution, Priority, Queue, Recommendation, Status
from app.escalation.models import EscalationRule
from app.intake.models import ApiClient, WebhookReceipt

__all__ = [
    "ApiClient",
    "ApiToken",
    "AuditEvent",
    "Case",
    "Decision",
    "EscalationRule",
    "Execution",
    "Notification",
    "Priority",
    "Queue",
    "Recommendation",
    "Role",
    "Status",
    "User",
    "WebhookReceipt",
    "queue_members",
]
