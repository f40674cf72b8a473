"""Background processes: the RQ worker (``python -m workers``) and the periodic
job scheduler (``python -m workers.scheduler``)."""
