"""Every ``futurekit.X`` a test names exists, GPU tests included (they cannot run here).

Two GPU tests once called ``futurekit.to_torch``, which the package does not export:
they failed on the first GPU machine instead of on every CPU run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import futurekit

TESTS = Path(__file__).parent
SCRIPTS = TESTS.parent / "scripts"
EXAMPLES = TESTS.parent / "examples"


def _files() -> list[Path]:
    found = sorted(TESTS.rglob("*.py")) + sorted(SCRIPTS.glob("*.py"))
    return found + sorted(EXAMPLES.rglob("*.py"))


@pytest.mark.parametrize("path", _files(), ids=lambda p: str(p.relative_to(TESTS.parent)))
def test_every_futurekit_attribute_named_exists(path: Path) -> None:
    tree = ast.parse(path.read_text(), filename=str(path))
    missing = sorted(
        {
            f"futurekit.{node.attr} (line {node.lineno})"
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "futurekit"
            and isinstance(node.ctx, ast.Load)
            and not hasattr(futurekit, node.attr)
        }
    )
    assert not missing, f"{path.name} names what futurekit does not have: {missing}"
