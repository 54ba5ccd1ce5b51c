"""Shared fixtures: tiny corpora written by the tests, so no test depends on the machine's corpora."""
from __future__ import annotations

# First, before numpy: effdata holds numpy and OpenBLAS at their AVX2 code paths (effdata/numerics.py), and the
# committed reports regenerate in this process (tests/test_regenerate.py); tests/test_numerics.py checks it took.
import effdata  # noqa: F401, I001

import random  # noqa: E402
from pathlib import Path

import pytest
from threadpoolctl import threadpool_limits

WORDS = ("the of and to in a is that for it as was with be by on not he this are or his from at which but "
         "have an they you were her she there been one all we their has would when if so no will what can "
         "more out said some time very into could other then these two may first any new like our over also "
         "sea ship river morning house light water small great old long little people night day world").split()
NAMES = "alpha beta gamma delta value item count total index name data result node left right".split()


def python_document(rng: random.Random, n_functions: int) -> str:
    parts = ['"""A module of small functions."""', "import os", ""]
    for _ in range(n_functions):
        name, arg, other = rng.choice(NAMES), rng.choice(NAMES), rng.choice(NAMES)
        k = rng.randint(1, 9)
        parts += [f"def {name}_{rng.randint(0, 99)}({arg}, {other}={k}):",
                  f"    for i in range({arg}):",
                  f"        if i % {k} == 0:",
                  f"            {other} += i",
                  f"    return {other} + len(os.sep)", ""]
    return "\n".join(parts)


def english_document(rng: random.Random, n_sentences: int) -> str:
    sentences = []
    for _ in range(n_sentences):
        words = [rng.choice(WORDS) for _ in range(rng.randint(5, 14))]
        sentences.append(" ".join(words).capitalize() + ".")
    return " ".join(sentences) + "\n"


def write_tiny_corpora(root: Path, n_docs: int = 160, seed: int = 0) -> dict[str, str]:
    """Two `files:` corpora (Python-like and English-like); returns their corpus names."""
    rng = random.Random(seed)
    (root / "py").mkdir(parents=True, exist_ok=True)
    (root / "txt").mkdir(parents=True, exist_ok=True)
    for i in range(n_docs):
        (root / "py" / f"mod{i:03d}.py").write_text(python_document(rng, rng.randint(10, 25)))
        (root / "txt" / f"doc{i:03d}.txt").write_text(english_document(rng, rng.randint(20, 50)))
    return {"python": f"files:{root}/py/*.py", "text": f"files:{root}/txt/*.txt"}


@pytest.fixture(scope="session")
def tiny_corpora(tmp_path_factory) -> dict[str, str]:
    return write_tiny_corpora(tmp_path_factory.mktemp("corpora"))


@pytest.fixture(scope="session", autouse=True)
def one_blas_thread():
    """What `effdata.analyze` does for a whole analysis; the tests call the fitters directly."""
    with threadpool_limits(1, user_api="blas"):
        yield


def pytest_itemcollected(item):
    """Tests that share a module-scoped fixture of their own module run in one xdist worker, so that it is built
    once: spread over two workers, test_runner.py's smoke study (30 s) and test_plots_report.py's studies (23 s
    and 11 s) were each built twice (`pytest --durations`, 5 December). A test already in a group keeps it. Marked
    as each test is collected, so the mark is there before any pytest_collection_modifyitems (xdist reads the
    groups in its own). tests/test_xdist_groups.py checks that the groups are honoured at all."""
    if item.get_closest_marker("xdist_group") or not hasattr(item, "_fixtureinfo"):
        return
    module = item.nodeid.split("::")[0]
    shared = sorted(name for name, defs in item._fixtureinfo.name2fixturedefs.items()
                    if defs and defs[-1].scope == "module" and defs[-1].baseid == module)
    if shared:
        item.add_marker(pytest.mark.xdist_group(f"{module}::{shared[0]}"))
