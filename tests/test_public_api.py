"""The public surface: ``__all__`` is complete, sorted, and every name is importable."""

from __future__ import annotations

import gcache


def test_all_is_sorted_and_complete() -> None:
    public = {name for name in vars(gcache) if not name.startswith("_")}
    assert gcache.__all__ == sorted(gcache.__all__)
    assert set(gcache.__all__) == public


def test_public_names_have_docstrings() -> None:
    for name in gcache.__all__:
        assert getattr(gcache, name).__doc__, name


def test_py_typed_marker_ships() -> None:
    from importlib.resources import files

    assert files("gcache").joinpath("py.typed").is_file()
