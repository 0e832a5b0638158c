"""The public surface: ``__all__`` is complete, sorted, and every name is importable and
documented, for both packages."""

from __future__ import annotations

from types import ModuleType

import pytest

import bus
import gcache


@pytest.mark.parametrize("package", [gcache, bus], ids=["gcache", "bus"])
def test_all_is_sorted_and_complete(package: ModuleType) -> None:
    public = {name for name in vars(package) if not name.startswith("_")}
    assert package.__all__ == sorted(package.__all__)
    assert set(package.__all__) == public


@pytest.mark.parametrize("package", [gcache, bus], ids=["gcache", "bus"])
def test_public_names_have_docstrings(package: ModuleType) -> None:
    for name in package.__all__:
        assert getattr(package, name).__doc__, name


def test_bus_does_not_import_gcache() -> None:
    """Writers that are not caches use ``bus`` alone (DESIGN §5)."""
    import subprocess
    import sys

    probe = "import sys, bus; print(sorted(m for m in sys.modules if m.startswith('gcache')))"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_py_typed_marker_ships() -> None:
    from importlib.resources import files

    assert files("gcache").joinpath("py.typed").is_file()
    assert files("bus").joinpath("py.typed").is_file()
