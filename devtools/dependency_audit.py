"""``python -m devtools.dependency_audit``: every pinned package (constraints.txt) against the known
vulnerabilities. Exit 1 when one is affected and not justified in ``devtools/audit_exceptions.txt``.

pip-audit does the work: it asks PyPI's advisories (PyPI's JSON API per version, fed by the PyPA
advisory database and OSV). Some networks reach PyPI's package index and its per-project JSON, but
not the per-version JSON, nor osv.dev: there pip-audit skips every package ("could not be
audited"). For those, the per-project JSON still lists the advisories of the project's latest
release, so a pin at the latest release is checked from it; any other pin is named as not checked.
Nothing fails for want of a network: the report says what was and was not checked.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
PROJECT_JSON = "https://pypi.org/pypi/{name}/json"
EXCEPTIONS = Path(__file__).with_name("audit_exceptions.txt")


@dataclass(frozen=True)
class Finding:
    package: str
    version: str
    vulnerability: str
    fixed_in: tuple[str, ...] = ()


@dataclass
class Report:
    checked: list[str] = field(default_factory=list)  # "name==version"
    unchecked: dict[str, str] = field(default_factory=dict)  # "name==version" → why
    findings: list[Finding] = field(default_factory=list)


def normalized(name: str) -> str:
    """A project name as PyPI and pip-audit compare it (PEP 503): ``typing_extensions`` → ``typing-extensions``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(constraints: Path) -> dict[str, str]:
    """normalized name → version of every ``name==version`` line."""
    found = {}
    for line in constraints.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = (part.strip() for part in line.split("==", 1))
            found[normalized(name)] = version
    return found


def exceptions(path: Path = EXCEPTIONS) -> dict[str, str]:
    """Vulnerability id → the justification beside it (``ID  why it does not apply``)."""
    if not path.exists():
        return {}
    found = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            vuln, _, why = line.partition(" ")
            if not why.strip():
                raise SystemExit(f"{path.name}: {vuln} has no justification beside it")
            found[vuln] = why.strip()
    return found


def run_pip_audit(constraints: Path) -> list[dict]:
    """pip-audit's JSON ``dependencies``: each with its ``vulns``, or a ``skip_reason``."""
    command = [sys.executable, "-m", "pip_audit", "-r", str(constraints), "--no-deps", "--disable-pip",
               "--format", "json", "--progress-spinner", "off", "--timeout", "15"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)  # noqa: S603
    try:
        return json.loads(done.stdout)["dependencies"]
    except (json.JSONDecodeError, KeyError):
        raise SystemExit(f"pip-audit failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}") from None


def latest_release_advisories(http: httpx.Client, project_json: str, name: str,
                              version: str) -> list[Finding] | str:
    """The advisories of ``name`` ``version`` from its per-project JSON when that is its latest release;
    else why it cannot be checked this way."""
    try:
        response = http.get(project_json.format(name=name))
        response.raise_for_status()
        project = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        return f"PyPI unreachable: {exc.__class__.__name__}"
    latest = project["info"]["version"]
    if latest != version:
        return f"not the latest release ({latest}), and its own advisories are not reachable here"
    return [Finding(name, version, vuln["id"], tuple(vuln.get("fixed_in") or ()))
            for vuln in project.get("vulnerabilities", []) if not vuln.get("withdrawn")]


def audit(constraints: Path, *, project_json: str = PROJECT_JSON,
          pip_audit: Callable[[Path], list[dict]] = run_pip_audit) -> Report:
    pinned, report = pins(constraints), Report()
    skipped = []
    for dependency in pip_audit(constraints):
        name = normalized(dependency["name"])
        version = dependency.get("version") or pinned.get(name, "?")
        if "skip_reason" in dependency:
            skipped.append((name, version))
            continue
        report.checked.append(f"{name}=={version}")
        report.findings += [Finding(name, version, v["id"], tuple(v.get("fix_versions", ())))
                            for v in dependency.get("vulns", [])]
    with httpx.Client(timeout=20, follow_redirects=False) as http, ThreadPoolExecutor(8) as pool:
        answers = pool.map(lambda pin: latest_release_advisories(http, project_json, *pin), skipped)
        for (name, version), answer in zip(skipped, answers, strict=True):
            if isinstance(answer, str):
                report.unchecked[f"{name}=={version}"] = answer
            else:
                report.checked.append(f"{name}=={version}")
                report.findings += answer
    return report


def render(report: Report, justified: dict[str, str]) -> Iterable[str]:
    yield f"dependency audit: {len(report.checked)} pinned packages checked, {len(report.unchecked)} not checked"
    for pin, why in sorted(report.unchecked.items()):
        yield f"  not checked: {pin}: {why}"
    for finding in report.findings:
        fix = f", fixed in {', '.join(finding.fixed_in)}" if finding.fixed_in else ""
        verdict = f"justified: {justified[finding.vulnerability]}" if finding.vulnerability in justified \
            else "AFFECTED"
        yield f"  {finding.package}=={finding.version}: {finding.vulnerability}{fix}: {verdict}"


def affected(report: Report, justified: dict[str, str]) -> list[Finding]:
    """The findings no line of the exceptions file justifies: each one fails the audit."""
    return [finding for finding in report.findings if finding.vulnerability not in justified]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--constraints", type=Path, default=ROOT / "constraints.txt")
    args = parser.parse_args(argv)
    report, justified = audit(args.constraints), exceptions()
    for line in render(report, justified):
        print(line)
    return 1 if affected(report, justified) else 0


if __name__ == "__main__":
    sys.exit(main())
