"""Data flows one way: every effdata import points down the layers of docs/DESIGN.md (checked on the source)."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "effdata"

# What each layer may import from effdata (besides itself). Top-level command lines may import anything.
ALLOWED = {
    "foundation": set(),                                   # paths, fmt, spec, forecast
    "data": {"foundation"},
    "training": {"foundation"},
    "study": {"foundation", "data", "training"},
    "analysis": {"foundation"},
}
# `forecast` is foundation because the training loop stops a sweep's run by the forecast whose error the analysis
# measures: one fit that both layers use, and neither may import the other.
FOUNDATION = {"effdata.paths", "effdata.fmt", "effdata.spec", "effdata.forecast"}


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


# Inside the analysis layer, one folder per question a report answers (docs/DESIGN.md, "The analysis layer"):
# each may import the shared core and nothing of another question, except the planner and the audit, which
# read the laws the other folders fit. `pipeline` and `report` at the top of the layer assemble them all.
QUESTIONS = {
    "core": set(),
    "transfer": {"core"}, "laws": {"core"}, "budget": {"core"}, "shape": {"core"}, "sweep": {"core"},
    "dynamics": {"core"},
    "plan": {"core", "laws", "shape", "dynamics", "budget"},   # dynamics: the compute allocation reads Kaplan's frontier;
    # budget: a transfer law's pretraining is told apart from a plan's by the analysis's own "same budget" ratio
    "audit": {"core", "laws", "budget"},
}
ASSEMBLY = {"effdata.analysis.pipeline", "effdata.analysis.report", "effdata.analysis"}


def question_of(module: str) -> str | None:
    """The question folder of an analysis module (None: the assembly at the top of the layer)."""
    if module in ASSEMBLY:
        return None
    parts = module.split(".")
    assert parts[:2] == ["effdata", "analysis"] and len(parts) >= 3 and parts[2] in QUESTIONS, \
        f"{module}: an analysis module belongs in a question folder ({sorted(QUESTIONS)}) or is {sorted(ASSEMBLY)}"
    return parts[2]


def test_analysis_questions_import_only_the_core():
    wrong = []
    for path in sorted((PACKAGE / "analysis").rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        question = question_of(module)
        if question is None:
            continue
        for imported in effdata_imports(path):
            if not imported.startswith("effdata.analysis."):
                continue
            other = question_of(imported)
            if other is None or (other != question and other not in QUESTIONS[question]):
                wrong.append(f"{module} ({question}/) imports {imported}")
    assert not wrong, "\n".join(wrong)


def test_the_question_check_sees_a_crossing(tmp_path):
    """The check above can fail: a shape module importing the budget folder, or the report, is caught."""
    assert "budget" not in QUESTIONS["shape"] and question_of("effdata.analysis.budget.budget") == "budget"
    assert question_of("effdata.analysis.report") is None   # importing the assembly from a question is wrong too


def test_the_check_sees_a_wrong_import(tmp_path):
    """The check above can fail: an analysis module importing the study layer is caught."""
    bad = tmp_path / "bad.py"
    bad.write_text("from effdata.study.runner import execute_run\n")
    assert layer_of(next(iter(effdata_imports(bad)))) not in ALLOWED["analysis"]
