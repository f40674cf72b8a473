"""``flask --app wsgi audit …``: seal, sign, prove and verify the audit log; export from it."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup

from app.audit import chain, checkpoints, proofs, verification
from app.auditor import evidence, export
from app.auditor.views import render_evidence
from app.errors import DomainError
from app.extensions import db
from tools import verify_export

audit = AppGroup("audit", help="Seal, sign, prove and verify the audit log; export decision logs.")


def _fail(message: str, code: int = 2) -> None:
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


@audit.command("seal")
def audit_seal() -> None:
    """Give every committed event its place in the log now (the scheduler does it every few seconds)."""
    click.echo(f"sealed {chain.seal(db.session)} events; the log holds {chain.sealed_count(db.session)}")


@audit.command("keygen")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the private key (PEM); the public key goes to OUT.pub.")
def audit_keygen(out: Path) -> None:
    """Create the Ed25519 key pair that signs checkpoints. Keep the private key out of the database
    and out of version control; point AUDIT_SIGNING_KEY_FILE at it."""
    if out.exists():
        _fail(f"{out} exists: a signing key is never overwritten")
    pem, public = checkpoints.generate_key()
    out.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as private_file:
        private_file.write(pem)
    Path(f"{out}.pub").write_text(public + "\n")
    click.echo(f"private key: {out} (mode 600): set AUDIT_SIGNING_KEY_FILE={out}")
    click.echo(f"public key:  {public} (also in {out}.pub): give it to your auditors")


@audit.command("checkpoint")
def audit_checkpoint() -> None:
    """Seal, then sign and publish a checkpoint of the whole log."""
    try:
        made = checkpoints.create(db.session, current_app.config)
    except DomainError as exc:
        _fail(str(exc))
    click.echo(json.dumps(made.document(), indent=2))


@audit.command("verify")
def audit_verify() -> None:
    """Recompute the log against every checkpoint; exit 1 naming the first bad event."""
    chain.seal(db.session)
    total = chain.sealed_count(db.session)
    click.echo(f"verifying {total} audit events…", err=True)

    def progress(done: int) -> None:
        click.echo(f"  {done}/{total} ({done * 100 // max(total, 1)}%)", err=True)

    result = verification.verify(db.session, current_app.config, progress=progress,
                                 every=max(total // 10, 1000))
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    if result.ok:
        click.echo(f"audit log intact: {result.checked} events verified against {result.checkpoints} "
                   f"signed checkpoints" + (f"; {result.unsealed} events not sealed yet" if result.unsealed else ""))
        return
    where = f" at event {result.first_bad_seq}" if result.first_bad_seq else ""
    click.echo(f"audit log BROKEN{where}: {result.problem} ({result.checked} events verified before it)", err=True)
    sys.exit(1)


@audit.command("prove")
@click.option("--event", "seq", type=click.IntRange(1), help="Inclusion proof of this event (its seq).")
@click.option("--from-size", type=click.IntRange(1), help="Consistency proof from this tree size…")
@click.option("--to-size", type=click.IntRange(1), help="…to this one (default: the latest checkpoint's).")
def audit_prove(seq: int | None, from_size: int | None, to_size: int | None) -> None:
    """Print an inclusion proof (--event) or a consistency proof (--from-size) as JSON, against
    the latest checkpoint; tools/verify_export.py checks both."""
    if (seq is None) == (from_size is None):
        _fail("give either --event SEQ or --from-size N")
    try:
        proof = (proofs.inclusion(db.session, seq) if seq is not None
                 else proofs.consistency(db.session, from_size, to_size))
    except DomainError as exc:
        _fail(str(exc))
    click.echo(json.dumps(proof, indent=2))


@audit.command("public-key")
def audit_public_key() -> None:
    """Print the public key that checks this installation's checkpoints (base64 of its 32 bytes)."""
    try:
        key = checkpoints.public_key(current_app.config)
    except DomainError as exc:
        _fail(str(exc))
    if key is None:
        _fail("no audit signing key is configured (see `audit keygen`)")
    click.echo(key)


@audit.command("evidence")
@click.option("--case", "case_id", required=True, type=click.IntRange(1), help="The case's id.")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the package.")
@click.option("--html", "as_html", is_flag=True, help="Write the printable page instead of the JSON.")
def audit_evidence(case_id: int, out: Path, as_html: bool) -> None:
    """Write a case's evidence package: the case, its recommendations, decisions and execution, and
    its audit events with inclusion proofs against a signed checkpoint (signed now when needed)."""
    try:
        package = evidence.build(db.session, current_app.config, case_id)
    except DomainError as exc:
        _fail(str(exc))
    if as_html:
        with current_app.test_request_context():
            text = render_evidence(package, standalone=True)
    else:
        text = package.model_dump_json(indent=2)
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        _fail(f"{out}: cannot be written ({exc.strerror})")
    proven, waiting = len(package.audit.events), len(package.audit.not_yet_provable)
    click.echo(f"case {case_id}: {proven} audit events proven" + (f", {waiting} not yet provable" if waiting else "")
               + f"; written to {out}")
    for warning in package.audit.warnings:
        click.echo(f"warning: {warning}", err=True)


@audit.command("export")
@click.option("--format", "fmt", required=True, type=click.Choice(export.FORMATS), help="JSON Lines or CSV.")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The file to write; its manifest goes to OUT.manifest.json.")
@click.option("--since", help="Decided on or after this date (YYYY-MM-DD) or time (ISO 8601; UTC unless it says).")
@click.option("--until", help="Decided on or before this date (the whole day) or time.")
@click.option("--domain", help="Only cases of this domain.")
@click.option("--queue", help="Only cases in this queue (by name).")
@click.option("--case-type", help="Only cases of this type.")
@click.option("--outcome", help=f"Only this outcome: {', '.join(export.OUTCOMES.values())}.")
@click.option("--reviewer", help="Only decisions this reviewer (email) took part in.")
@click.option("--redact", is_flag=True, help="Pseudonyms for personal data; audit events as leaf hashes only.")
def audit_export(fmt: str, out: Path, redact: bool, **given: str | None) -> None:
    """Write the decision log (one row per decision) and a manifest proving its audit events against
    a checkpoint signed now; check both with `audit verify-export` or tools/verify_export.py."""
    def progress(rows: int) -> None:
        click.echo(f"  {rows} rows written", err=True)

    try:
        filters = export.parse_filters(db.session, given)
        result = export.write_export(db.session, current_app.config, out, fmt=fmt, filters=filters, redact=redact,
                                     progress=progress)
    except DomainError as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(f"{out}: {exc.strerror}")
    left_out = (f"; {result.left_out} decided after the checkpoint left out (export again to include them)"
                if result.left_out else "")
    click.echo(f"{result.rows} rows written to {out}, manifest {export.manifest_path(out)}; "
               f"checkpoint of {result.manifest['checkpoint']['tree_size']} events{left_out}")


@audit.command("verify-export")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--public-key", help="The public key (base64 or PEM, or a file holding it); default: this "
                                   "installation's.")
def audit_verify_export(file: Path, public_key: str | None) -> None:
    """Check an export with tools/verify_export.py (what an auditor runs): exit 1 naming what failed."""
    try:
        key = public_key or checkpoints.public_key(current_app.config)
    except DomainError as exc:
        _fail(str(exc))
    sys.exit(verify_export.main([str(file), *(["--public-key", key] if key else [])]))
