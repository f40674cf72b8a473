"""Every action name the audit trail records: ``chain.record`` accepts nothing else.

The values are the stored strings (a StrEnum member *is* its value), so events written before
this enum existed read back the same. Every lifecycle move ``event`` is recorded as
``case.<event>``: adding a move to ``lifecycle.TRANSITIONS`` means adding its action here
(the lifecycle checks this when it is imported).
"""

from __future__ import annotations

import enum


class AuditAction(enum.StrEnum):
    # the lifecycle's moves (lifecycle.TRANSITIONS), as case.<event>
    CASE_ANALYSIS_STARTED = "case.analysis_started"
    CASE_RECOMMENDATION_STORED = "case.recommendation_stored"
    CASE_ANALYSIS_FAILED = "case.analysis_failed"
    CASE_ANALYSIS_RETRIED = "case.analysis_retried"
    CASE_CLAIMED = "case.claimed"
    CASE_ASSIGNED = "case.assigned"
    CASE_RELEASED = "case.released"
    CASE_APPROVED = "case.approved"
    CASE_FIRST_APPROVAL = "case.first_approval"
    CASE_SECOND_APPROVAL = "case.second_approval"
    CASE_APPROVAL_UNDONE = "case.approval_undone"
    CASE_REJECTED = "case.rejected"
    CASE_INFO_REQUESTED = "case.info_requested"
    CASE_INFO_RECEIVED = "case.info_received"
    CASE_ESCALATED = "case.escalated"
    CASE_EXECUTION_STARTED = "case.execution_started"
    CASE_EXECUTED = "case.executed"
    CASE_EXECUTION_FAILED = "case.execution_failed"
    CASE_EXECUTION_RETRIED = "case.execution_retried"
    CASE_WITHDRAWN = "case.withdrawn"
    CASE_RESPONDED = "case.responded"
    CASE_EXPIRED = "case.expired"
    # other events of a case
    CASE_RECEIVED = "case.received"
    CASE_BLIND_ASSESSMENT = "case.blind_assessment"
    CASE_SLA_WARNING = "case.sla_warning"
    CASE_SLA_BREACHED = "case.sla_breached"
    CASE_SLA_CHANGED = "case.sla_changed"
    CASE_EXECUTION_REFUSED = "case.execution_refused"
    DECISION_UNDONE = "decision.undone"
    # execution and upstream notifications
    EXECUTION_RETRY_SCHEDULED = "execution.retry_scheduled"
    EXECUTION_MARKED_HANDLED = "execution.marked_handled"
    UPSTREAM_NOTIFIED = "upstream.notified"
    UPSTREAM_NOTIFY_FAILED = "upstream.notify_failed"
    # escalation rules
    RULE_CREATED = "rule.created"
    RULE_UPDATED = "rule.updated"
    RULE_ENABLED = "rule.enabled"
    RULE_DISABLED = "rule.disabled"
    RULE_MOVED = "rule.moved"
    RULE_FIRED = "rule.fired"
    # people, API clients, queues
    USER_CREATED = "user.created"
    USER_LOGIN = "user.login"
    USER_LOGOUT = "user.logout"
    USER_SESSIONS_ENDED = "user.sessions_ended"
    USER_UPDATED = "user.updated"
    USER_DEACTIVATED = "user.deactivated"
    USER_REACTIVATED = "user.reactivated"
    USER_PASSWORD_RESET = "user.password_reset"  # noqa: S105 (an action name)
    USER_PASSWORD_CHANGED = "user.password_changed"  # noqa: S105 (an action name)
    API_TOKEN_CREATED = "api_token.created"  # noqa: S105 (an action name)
    API_TOKEN_REVOKED = "api_token.revoked"  # noqa: S105 (an action name)
    CLIENT_CREATED = "client.created"
    CLIENT_SECRET_ROTATED = "client.secret_rotated"  # noqa: S105 (an action name)
    CLIENT_UPDATED = "client.updated"
    CLIENT_REVOKED = "client.revoked"
    REASON_CODE_CREATED = "reason_code.created"
    REASON_CODE_UPDATED = "reason_code.updated"
    QUEUE_CREATED = "queue.created"
    QUEUE_UPDATED = "queue.updated"
    QUEUE_ARCHIVED = "queue.archived"
    QUEUE_UNARCHIVED = "queue.unarchived"
    # QA sampling (app/oversight/qa.py)
    QA_SAMPLED = "qa.sampled"
    QA_AGREED = "qa.agreed"
    QA_DISAGREED = "qa.disagreed"
    # agents' tool policies (app/agents)
    AGENT_TOOL_CREATED = "agent_tool.created"
    AGENT_TOOL_UPDATED = "agent_tool.updated"
    # the kill switch (app/controls)
    CONTROL_PAUSED = "control.paused"
    CONTROL_RESUMED = "control.resumed"
