"""The folders tell the architecture (docs/architecture.md): each wing imports only what its row
of that table allows. Read from the source (the AST), so a lazy import inside a function counts.
The exceptions are named one by one, so none can grow unnoticed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.policies.test_imports import imported_modules

ROOT = Path(__file__).resolve().parents[1]
OWN = frozenset({"demo", "policies", "proto", "scaler", "simulator", "worker"})
ALLOWED: dict[str, frozenset[str]] = {
    "scaler": frozenset({"policies", "proto", "scaler"}),
    "worker": frozenset({"worker"}),
    "simulator": frozenset({"policies", "simulator", "scaler"}),
    "demo": OWN,  # the whole path on one machine: every wing
}
# Modules of the wing that may import more, until they move out of it (docs/architecture.md:
# "Not yet where they belong").
EXCEPTIONS: dict[str, frozenset[str]] = {
    "scaler/cli.py": frozenset(),  # reaches the wings through importlib strings
}
# What the simulator may take from the scaler: the one metadata parser, nothing with I/O.
SIMULATOR_FROM_SCALER = frozenset({"scaler.metadata", "scaler.ports"})


def _modules(wing: str) -> list[str]:
    return sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / wing).rglob("*.py"))


@pytest.mark.parametrize("module", [m for wing in ALLOWED for m in _modules(wing)])
def test_each_wing_imports_only_what_it_may(module: str) -> None:
    wing = module.split("/")[0]
    own = imported_modules((ROOT / module).read_text()) & OWN
    allowed = ALLOWED[wing] | EXCEPTIONS.get(module, frozenset())
    assert own <= allowed, f"{module} imports {sorted(own - allowed)}"


@pytest.mark.parametrize("module", _modules("simulator"))
def test_the_simulator_takes_only_the_metadata_parser_from_the_scaler(module: str) -> None:
    import ast

    tree = ast.parse((ROOT / module).read_text())
    taken = {
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("scaler")
    }
    assert taken <= SIMULATOR_FROM_SCALER, f"{module} imports {sorted(taken)}"
