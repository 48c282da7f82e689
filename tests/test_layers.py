"""Layers point one way (DESIGN.md, STYLE.md): mailflow/ -> flows/ -> sinks/, schemas/ ->
operators/. Every import in the packages is read with `ast` (module level, inside
functions, under `if TYPE_CHECKING:`), so a layer cannot lean on one above it unseen.
"""

from __future__ import annotations

import ast
import pickle
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: What each package may import from the project (itself always).
ALLOWED: dict[str, frozenset[str]] = {
    "operators": frozenset(),
    "schemas": frozenset({"operators"}),
    "sinks": frozenset({"schemas", "operators"}),
    "flows": frozenset({"sinks", "schemas", "operators"}),
    "mailflow": frozenset({"flows", "sinks", "schemas", "operators"}),
}


def imported_modules(tree: ast.AST, path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) for every import in the tree; `path` (relative to the
    project root) resolves relative imports."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the file's own package, `level` dots up
                parts = path.with_suffix("").parts[:-node.level]
                found.append((node.lineno, ".".join([*parts, *filter(None, [node.module])])))
            else:
                found.append((node.lineno, node.module or ""))
    return found


def layer_violations(root: Path = ROOT) -> list[str]:
    """`file:line imports module` for each import against the direction of the layers."""
    bad: list[str] = []
    for package, allowed in ALLOWED.items():
        for path in sorted((root / package).rglob("*.py")):
            name = path.relative_to(root)
            tree = ast.parse(path.read_text(), filename=str(name))
            for line, module in imported_modules(tree, name):
                top = module.split(".")[0]
                if top in ALLOWED and top != package and top not in allowed:
                    bad.append(f"{name}:{line} imports {module}")
    return bad


def test_every_import_points_down_the_layers():
    bad = layer_violations()
    assert not bad, ("imports against the layers (mailflow -> flows -> sinks, schemas -> "
                     "operators):\n" + "\n".join(bad))


def test_the_check_sees_imports_in_functions_relative_ones_and_plain_import(tmp_path):
    for package in ALLOWED:
        (tmp_path / package).mkdir()
    (tmp_path / "operators" / "core.py").write_text(
        "import math\nimport schemas.events\n\n"
        "def late():\n    from flows.stats import STATS\n    return STATS\n")
    (tmp_path / "sinks" / "out.py").write_text("from .counters import NO_COUNTS\n"
                                               "from mailflow import cli\n")
    (tmp_path / "flows" / "ok.py").write_text("from sinks.kafka import KafkaOutput\n")
    assert layer_violations(tmp_path) == ["operators/core.py:2 imports schemas.events",
                                          "operators/core.py:5 imports flows.stats",
                                          "sinks/out.py:2 imports mailflow"]


def test_relative_imports_resolve_from_the_file_s_package():
    tree = ast.parse("from ..hashing import RecipientHasher\nfrom . import sendgrid\n")
    assert imported_modules(tree, Path("schemas/providers/ses.py")) == [
        (1, "schemas.hashing"), (2, "schemas.providers")]


def test_snapshots_that_name_the_event_by_its_old_module_still_load():
    # Event moved from schemas/events.py to operators/event.py; recovery snapshots
    # written before name it `schemas.events.Event` (protocol 2 spells the class as
    # text, as older pickles of it would).
    from operators.event import Event

    ev = Event("e", 1, "open", "s", "h", "d", "d", "m", "", "", "", "", "", "", 0, "", "",
               "", "", 0.0, "", {"k": 1}, "email.opens", 0, 3)
    new = pickle.dumps(ev, protocol=2)
    old = new.replace(b"coperators.event\nEvent\n", b"cschemas.events\nEvent\n")
    assert old != new
    loaded = pickle.loads(old)
    assert type(loaded) is Event and loaded == ev
