"""Data flows one way: every effdata import points down the layers of docs/DESIGN.md (checked on the source)."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "effdata"

# What each layer may import from effdata (besides itself). Top-level command lines may import anything.
ALLOWED = {
    "foundation": set(),                                   # paths, fmt, spec
    "data": {"foundation"},
    "training": {"foundation"},
    "study": {"foundation", "data", "training"},
    "analysis": {"foundation"},
}
FOUNDATION = {"effdata.paths", "effdata.fmt", "effdata.spec"}


def layer_of(module: str) -> str:
    if module in FOUNDATION or module == "effdata":
        return "foundation"
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ALLOWED else "command"


def effdata_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("effdata"):
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.startswith("effdata"))
    return names


def test_imports_point_down_the_layers():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        layer = layer_of(module)
        if layer == "command":
            continue
        for imported in effdata_imports(path):
            other = layer_of(imported)
            if other != layer and other not in ALLOWED[layer]:
                wrong.append(f"{module} ({layer}) imports {imported} ({other})")
    assert not wrong, "\n".join(wrong)


def test_the_check_sees_a_wrong_import(tmp_path):
    """The check above can fail: an analysis module importing the study layer is caught."""
    bad = tmp_path / "bad.py"
    bad.write_text("from effdata.study.runner import execute_run\n")
    assert layer_of(next(iter(effdata_imports(bad)))) not in ALLOWED["analysis"]
