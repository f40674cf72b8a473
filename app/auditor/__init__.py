"""The auditor's workspace: the audit page, decision-log exports, evidence packages, and the
``audit`` commands. Reads everything, changes nothing but the log's own seals and checkpoints."""
