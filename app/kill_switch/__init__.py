"""Pausing and resuming the kill switch (`services`, the `control` commands in `cli`): audited, and a
resume enqueues the work that waited. The switch's state and the checks jobs make at the point of
work live below it, in `app.controls`, which the analysis and execution jobs read."""
