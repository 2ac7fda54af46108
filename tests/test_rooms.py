"""The house plan's import rules: engine and sessions never import textual (and more)."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NEVER = {
    "engine": {"textual", "duckdb", "sessions", "panels", "workbench"},
    "sessions": {"textual", "panels", "workbench"},
    "panels": {"duckdb", "torch", "transformers", "llama_cpp", "sentence_transformers"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("room", sorted(NEVER))
def test_room_never_imports(room):
    bad = {}
    for f in (ROOT / room).rglob("*.py"):
        hit = _imports(f) & NEVER[room]
        if hit:
            bad[str(f.relative_to(ROOT))] = sorted(hit)
    assert not bad, f"{room}/ imports what the house plan forbids: {bad}"


def test_importing_engine_and_sessions_loads_no_textual_or_torch():
    code = "import sys, engine, sessions; print(sorted(m for m in ('textual','torch','transformers','duckdb') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert out.strip() == "[]"
