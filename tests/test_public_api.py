"""Each package's public API is what its ``__all__`` says, as httpx pins its own: every listed
name exists, the list is sorted and has no duplicates, and every public name the package's
``__init__`` defines or imports is listed (so nothing becomes public by accident)."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WINGS = ("demo", "policies", "scaler", "simulator", "worker")


def _packages() -> list[str]:
    found = []
    for wing in WINGS:
        found.append(wing)
        for info in pkgutil.walk_packages([str(ROOT / wing)], prefix=f"{wing}."):
            if info.ispkg:
                found.append(info.name)
    return sorted(found)


def _with_all() -> list[str]:
    return [name for name in _packages() if hasattr(importlib.import_module(name), "__all__")]


def test_the_packages_that_export_an_api_say_so() -> None:
    assert {"scaler.brokers", "simulator.engine", "simulator.report"} <= set(_with_all())


@pytest.mark.parametrize("package", _with_all())
def test_all_is_exactly_the_public_names(package: str) -> None:
    module = importlib.import_module(package)
    exported = list(module.__all__)
    assert exported == sorted(set(exported), key=exported.index), "duplicates"
    assert sorted(exported) == sorted(exported, key=str), "unsorted"
    missing = [name for name in exported if not hasattr(module, name)]
    assert not missing, f"{package}.__all__ lists {missing}, which do not exist"
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not (isinstance(value, type(module)))  # submodules are reached by their path
        and name not in ("annotations", "TYPE_CHECKING")
    }
    unlisted = sorted(public - set(exported))
    assert not unlisted, f"{package} exposes {unlisted} without listing them in __all__"
