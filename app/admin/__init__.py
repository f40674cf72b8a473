"""Administration: queues, users, API clients and reason codes (``/admin``).

Each area is its own blueprint module; admins change things, auditors read, nobody here decides cases.
"""
