"""The layout docs/architecture.md describes is the code's: its feature packages import each other in
no circle, and the layout names every package and module of app/."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "app"


def package_of(module: str) -> str | None:
    """``app.review.services`` → ``review``; a top-level module such as ``app.jobs`` is its own."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "app" else None


def imported_modules(path: Path) -> set[str]:
    """Absolute modules the file imports when it runs (``if TYPE_CHECKING:`` blocks excluded)."""
    tree = ast.parse(path.read_text(), str(path))
    skipped = {id(node) for block in ast.walk(tree)
               if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
               for node in ast.walk(block)}
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in APP.rglob("*.py"):
        source = package_of(".".join(path.relative_to(ROOT).with_suffix("").parts))
        targets = {package_of(module) for module in imported_modules(path)} - {None, source}
        graph.setdefault(source, set()).update(target for target in targets if (APP / target).is_dir()
                                               or (APP / f"{target}.py").exists())
    return graph


def test_no_two_packages_import_each_other_in_a_circle():
    try:
        order = list(TopologicalSorter(import_graph()).static_order())
    except CycleError as exc:
        raise AssertionError(f"packages import each other in a circle: {' -> '.join(exc.args[1])}") from None
    assert {"cases", "review", "intake", "audit"} <= set(order)


def test_the_cycle_check_finds_a_circle():
    graph = {"review": {"execution"}, "execution": {"intake"}, "intake": {"review"}}
    try:
        list(TopologicalSorter(graph).static_order())
    except CycleError:
        return
    raise AssertionError("a circle went unnoticed")


def test_the_architecture_layout_names_every_package_and_module():
    layout = (ROOT / "docs" / "architecture.md").read_text().split("## The layout", 1)[1].split("```", 2)[1]
    top_level = [line.strip() for line in layout.splitlines() if line.startswith("  ") and not line.startswith("   ")]
    # "review/    inbox queries, …", or several on one line: "db.py, extensions.py, actors.py, models.py (…)"
    named = {name.strip().split(" ")[0].rstrip("/") for line in top_level for name in line.split("  ")[0].split(",")}
    present = {path.name for path in APP.iterdir() if path.is_dir() and (path / "__init__.py").exists()}
    present |= {path.name for path in APP.glob("*.py")}
    missing = sorted(present - named)
    assert not missing, f"add to the layout in docs/architecture.md: {missing}"
