"""``countersign``: every process and every command of the platform, from one entry point.

    countersign web [GUNICORN OPTIONS]   the web app under gunicorn, with gunicorn.conf.py
    countersign worker [OPTIONS]         an RQ worker (python -m workers; --help for its options)
    countersign scheduler                the periodic jobs and the audit sealer (python -m workers.scheduler)
    countersign db upgrade               apply the migrations (a step of its own, before the processes)
    countersign users|clients|queues|rules|audit|seed …   the app's commands (as flask --app wsgi …)

Installed by ``pip install -e .`` from a checkout (pyproject.toml, [project.scripts]);
``python -m workers.cli`` is the same without installing.
"""

from __future__ import annotations

import os
import sys

import click
from flask import Flask
from flask.cli import FlaskGroup

from config import BASE_DIR

GUNICORN_CONFIG = BASE_DIR / "gunicorn.conf.py"
# The process commands take their own options (gunicorn's, the worker's): click passes them on.
PASS_THROUGH = {"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []}


def load_app() -> Flask:
    from app import create_app

    return create_app()


cli = FlaskGroup(
    name="countersign", create_app=load_app, set_debug_flag=False,
    help="Countersign: run a process (web, worker, scheduler) or one of the app's commands.",
)


@cli.command("web", with_appcontext=False, context_settings=PASS_THROUGH)
@click.argument("gunicorn_args", nargs=-1, type=click.UNPROCESSED)
def web(gunicorn_args: tuple[str, ...]) -> None:
    """The web app: gunicorn with gunicorn.conf.py (HOST, PORT, WEB_CONCURRENCY, WEB_THREADS)."""
    argv = [sys.executable, "-m", "gunicorn", "--config", str(GUNICORN_CONFIG), *gunicorn_args]
    # Gunicorn takes this process's place: signals from systemd or a supervisor reach it directly.
    os.execv(sys.executable, argv)  # noqa: S606 (our own interpreter and arguments)


@cli.command("worker", with_appcontext=False, context_settings=PASS_THROUGH)
@click.argument("worker_args", nargs=-1, type=click.UNPROCESSED)
def worker(worker_args: tuple[str, ...]) -> None:
    """An RQ worker over the app's queues (--queues, --burst, --fork, --with-scheduler; --help)."""
    from workers.__main__ import main

    sys.exit(main(list(worker_args)))


@cli.command("scheduler", with_appcontext=False)
def scheduler() -> None:
    """RQ's cron scheduler for the periodic jobs, and the audit log's sealer thread."""
    from workers.scheduler import main

    sys.exit(main())


def main() -> None:
    cli.main(prog_name="countersign")


if __name__ == "__main__":
    main()
