"""Qualifying models before trusting them: `flask ai eval` runs labelled cases through the AI runtime
(nothing stored), and `flask ai compare-shadow` compares shadow models with the reviewers' decisions.
Above the AI runtime, intake's envelope and the escalation rules, which it uses as live traffic does."""
