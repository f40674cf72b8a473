"""AI agents' tool calls: the per-tool policies (table, YAML, admin page), expiry of undecided
calls, and waiting for a decision (the wait API)."""
