"""docs/security.md names a test for every claim: each one named must exist, and each hostile test must be named.

A claim whose test was renamed or deleted would otherwise go on reading as covered.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.conftest import REPO

SECURITY = REPO / "docs" / "security.md"
REFERENCE = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")


def functions_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}


def test_every_test_named_in_security_md_exists() -> None:
    references = REFERENCE.findall(SECURITY.read_text())
    assert len(references) >= 30
    missing = [f"{file}::{name}" for file, name in references if name not in functions_in(REPO / file)]
    assert not missing, f"docs/security.md names tests that do not exist: {missing}"


def test_every_hostile_test_is_named_in_security_md() -> None:
    named = set(REFERENCE.findall(SECURITY.read_text()))
    unnamed = [
        f"{path.relative_to(REPO)}::{name}"
        for path in sorted((REPO / "tests" / "hostile").glob("test_*.py"))
        if path.name != "test_security_doc.py"
        for name in sorted(functions_in(path))
        if (str(path.relative_to(REPO)), name) not in named
    ]
    allowed = {  # checks of the test machinery itself, not claims about the node
        "tests/hostile/test_corpus.py::test_corpus_covers_the_issue_categories",
        "tests/hostile/test_fuzz.py::test_every_seed_is_accepted_by_its_decoder",
        "tests/hostile/test_fuzz.py::test_a_finding_is_reported",
    }
    assert sorted(set(unnamed) - allowed) == []
