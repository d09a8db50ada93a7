"""ruff, mypy (strict) and the import-linter contracts are part of the suite, so a red lint
is a red build."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_ruff_lint_is_clean() -> None:
    result = run("ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean() -> None:
    result = run("ruff", "format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.timeout(300)
def test_mypy_strict_is_clean() -> None:
    result = run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_layering_contracts_hold() -> None:
    """pyproject.toml's [tool.importlinter] contracts (the layers of docs and issue 10)."""
    result = subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 5 kept, 0 broken." in result.stdout


def test_no_module_is_part_of_an_import_cycle() -> None:
    """import-linter's ``acyclic_siblings`` looks inside each package; this looks across them:
    no chain of imports between the product's modules comes back to where it started."""
    import grimp

    graph = grimp.build_graph("harvest", "gateway", "quotas")
    cycles = [
        chain
        for module in sorted(graph.modules)
        for imported in graph.find_modules_directly_imported_by(module)
        if imported != module
        and (chain := graph.find_shortest_chain(importer=imported, imported=module)) is not None
    ]
    assert cycles == []
