"""The kill switch: admins pause AI analysis or executions, everywhere or for one queue.

A pause is a row of ``pauses`` (`models.Pause`) while it is in force. Jobs read it at the point of
work (`switch`): a paused analysis leaves its case received, a paused execution leaves its case
approved (or its delivery waiting), and neither fails nor retries. Resuming removes the row and
enqueues the work that waited; the periodic sweeps skip paused work and find anything a resume
could not enqueue. Every pause and resume is audited (`services`).
"""
