"""Light prose: every module docstring under platform/blindsr says what the module is in at most 8 lines."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "platform" / "blindsr"
MAX_LINES = 8


def docstring_lines(path: Path) -> int:
    doc = ast.get_docstring(ast.parse(path.read_text()), clean=False)
    return 0 if doc is None else len(doc.strip().splitlines())


def test_module_docstrings_are_at_most_8_lines():
    long = {
        str(p.relative_to(PACKAGE)): n for p in sorted(PACKAGE.rglob("*.py")) if (n := docstring_lines(p)) > MAX_LINES
    }
    assert not long, f"module docstrings over {MAX_LINES} lines (move the rest to docs/): {long}"
