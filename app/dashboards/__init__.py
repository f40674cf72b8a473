"""Dashboards for admins, senior reviewers and auditors: the queues, the human oversight of the AI,
and the AI's cost and quality. Services (`queues`, `oversight`, `ai`) compute the numbers as plain
dataclasses from the database; `charts` draws them as SVG; `views` is the thin web layer."""
