"""The policy engine is pure: every module of ``policies/`` imports the standard library and
``policies`` alone, and none of the standard library's I/O, clocks or event loops. Read from the
source (the AST), so a lazy import inside a function counts too."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

POLICIES = Path(__file__).resolve().parents[2] / "policies"
# Standard-library modules that would let a policy read the clock or do I/O itself.
IMPURE = frozenset({"asyncio", "io", "os", "select", "socket", "subprocess", "threading", "time"})


def imported_modules(source: str) -> set[str]:
    """Top-level names of the absolute imports in ``source`` (``import a.b`` and ``from a import
    b`` give ``a``); relative imports stay inside the package and are left out."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_the_walk_sees_every_form_of_import() -> None:
    source = (
        "import numpy as np\nfrom yaml import safe_load\nfrom . import types\n"
        "def f():\n    import time.clock\n    from policies.types import Reason\n"
    )
    assert imported_modules(source) == {"numpy", "yaml", "time", "policies"}


@pytest.mark.parametrize(
    "module", sorted(p.relative_to(POLICIES).as_posix() for p in POLICIES.rglob("*.py"))
)
def test_policies_import_only_the_pure_standard_library(module: str) -> None:
    imported = imported_modules((POLICIES / module).read_text())
    third_party = {m for m in imported if m not in sys.stdlib_module_names and m != "policies"}
    assert not third_party, f"policies/{module} imports {sorted(third_party)}"
    assert not imported & IMPURE, f"policies/{module} imports {sorted(imported & IMPURE)}"
