"""effdata.corpora on tiny corpora written by the tests (source roots monkeypatched)."""
from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

import pytest

from effdata import corpora as corpora_cli
from effdata.data import documents, sources
from effdata.data import corpora
from effdata.data.corpora import CorpusError, Document, dedup, load_corpus, parse_mixture, split_of

_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def b64(n: int) -> str:
    s = ""
    while True:
        s = _B64[n % 64] + s
        n //= 64
        if n == 0:
            return s


def write_dictd(d: Path, name: str, entries: list[tuple[str, str]]) -> None:
    """A dictd database (.index + dictzip-compatible gzip .dict.dz)."""
    data, index = b"", []
    for head, body in entries:
        raw = body.encode()
        index.append(f"{head}\t{b64(len(data))}\t{b64(len(raw))}")
        data += raw
    (d / f"{name}.index").write_text("\n".join(index) + "\n")
    with gzip.open(d / f"{name}.dict.dz", "wb") as f:
        f.write(data)


GCIDE = [
    ("00-database-info", "This file was converted from the original database\n   License boilerplate.\n"),
    ("Abandon", "Abandon \\A*ban\"don\\, v. t. [OF. {abandoner}.]\n   1. To give up wholly; to <i>desert</i>.\n   [1913 Webster]\n"),
    ("Abandon", "Abandon \\A*ban\"don\\, n.\n   A complete giving up to natural impulses. See {Abandonment}.\n   [1913 Webster]\n"),
]
WN = [
    ("dog", "dog\n    n 1: a member of the genus Canis that has been domesticated [syn:\n         {domestic dog}, {Canis familiaris}]\n"),
]
JARGON = [("00-database-short", "The Jargon File\n"), ("hack", "hack\n n.\n\n    [very common] Originally, a quick job that produces what is needed.\n")]
DEVIL = [("00-database-long", "Copyright boilerplate\n"), ("ZEAL", "ZEAL, n.  A certain nervous disorder afflicting the young and inexperienced.\n")]


def make_sources(root: Path, monkeypatch, n_py: int = 40, n_code: int = 40, n_fortunes: int = 60) -> Path:
    """Write tiny python/code/text sources under root and point effdata.corpora at them."""
    std = root / "stdlib"
    (std / "pkg").mkdir(parents=True)
    (std / "test").mkdir()
    (std / "site-packages" / "foo").mkdir(parents=True)
    for i in range(n_py):
        (std / ("pkg" if i % 2 else "") / f"mod{i}.py").write_text(
            f"def function_{i}(x, y={i}):\n    \"\"\"Return x plus {i}.\"\"\"\n    return x + y * {i}\n\n" * (1 + i % 5)
        )
    (std / "test" / "test_big.py").write_text("import unittest\n" * 50)
    (std / "site-packages" / "foo" / "bar.py").write_text("print('site')\n")
    (std / "pkg" / "dup_a.py").write_text("X = 'duplicate'\n")
    (std / "pkg" / "dup_b.py").write_text("X = 'duplicate'\n")
    monkeypatch.setattr(sources, "STDLIB_DIR", std)
    monkeypatch.setattr(sources, "SITE_PACKAGES_DIRS", [std / "site-packages"])

    inc = root / "include"
    (inc / "sub").mkdir(parents=True)
    for i in range(n_code):
        (inc / ("sub" if i % 2 else "") / f"h{i}.h").write_text(
            f"#ifndef H{i}\n#define H{i}\nstatic inline int f{i}(int x) {{ return x * {i}; }}\n#endif\n" * (1 + i % 4)
        )
    (inc / "script.py").write_text("print('not code corpus')\n")
    monkeypatch.setattr(sources, "CODE_DIRS", {"inc": inc})

    dd = root / "dictd"
    dd.mkdir()
    write_dictd(dd, "gcide", GCIDE)
    write_dictd(dd, "wn", WN)
    write_dictd(dd, "jargon", JARGON)
    write_dictd(dd, "devil", DEVIL)
    fd = root / "fortunes"
    (fd / "off").mkdir(parents=True)
    (fd / "wisdom").write_text(
        "\n%\n".join(f"Fortune number {i}: a wise saying about patience and the number {i}." for i in range(n_fortunes)) + "\n%\n"
    )
    (fd / "wisdom.dat").write_bytes(b"\x00\x01binary")
    (fd / "off" / "rude").write_text("An offensive fortune that must be skipped.\n%\n")
    monkeypatch.setattr(sources, "DICTD_DIR", dd)
    monkeypatch.setattr(sources, "FORTUNE_DIR", fd)
    return root


@pytest.fixture
def fake(tmp_path, monkeypatch):
    make_sources(tmp_path / "src", monkeypatch)
    return tmp_path / "home"


def write_files(d: Path, n: int, prefix: str = "doc", size: int = 1) -> None:
    d.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (d / f"{prefix}{i:04d}.txt").write_text(f"{prefix} {i} " + "lorem ipsum dolor sit amet " * size * (1 + i % 7))


# --------------------------------------------------------------------------------------------


def test_split_of_is_deterministic_and_has_the_right_fractions():
    ids = [f"python:pkg/mod{i}.py" for i in range(20000)]
    splits = [split_of(i) for i in ids]
    assert splits == [split_of(i) for i in ids]
    assert set(splits) == {"train", "valid", "test"}
    for s, frac in documents.SPLIT_FRACTIONS.items():
        assert abs(splits.count(s) / len(ids) - frac) < 0.01


def test_python_corpus_ids_exclusions_and_duplicates(fake):
    c = load_corpus("python", fake)
    ids = {d.id for d in c.documents}
    assert "python:mod0.py" in ids and "python:pkg/mod1.py" in ids
    assert not any("test_big" in i or "site-packages" in i for i in ids)
    # exact duplicates: one kept, the smallest id
    assert "python:pkg/dup_a.py" in ids and "python:pkg/dup_b.py" not in ids
    assert c.info["duplicates_removed"] == 1
    assert all(str(fake) not in i for i in ids)  # ids do not depend on machine paths
    big = load_corpus("python-large", fake)
    assert "python:site-packages/foo/bar.py" in {d.id for d in big.documents}


def test_code_corpus_has_no_python(fake):
    c = load_corpus("code", fake)
    assert len(c.documents) == 40
    assert all(d.id.startswith("code:inc/") and d.id.endswith(".h") for d in c.documents)
    assert not any("print(" in d.text for d in c.documents)


def test_text_corpus_is_cleaned(fake):
    c = load_corpus("text", fake)
    by = {d.id: d.text for d in c.documents}
    assert set(k for k in by if not k.startswith("text:fortunes")) == {
        "text:gcide:Abandon#1", "text:gcide:Abandon#2", "text:wn:dog#1", "text:jargon:hack#1", "text:devil:ZEAL#1"}
    a1 = by["text:gcide:Abandon#1"]
    assert "To give up wholly; to desert." in a1
    for junk in ("\\", "{", "}", "<i>", "[1913 Webster]", "  "):
        assert junk not in a1
    assert "[syn:" not in by["text:wn:dog#1"] and "domesticated" in by["text:wn:dog#1"]
    assert not any("boilerplate" in t.lower() or "License" in t for t in by.values())
    fortunes = [k for k in by if k.startswith("text:fortunes:")]
    assert len(fortunes) == 60 and all(k.startswith("text:fortunes:wisdom#") for k in fortunes)
    assert not any("offensive" in t for t in by.values())
    assert by["text:fortunes:wisdom#1"] == "Fortune number 0: a wise saying about patience and the number 0.\n"


def test_character_accounting_and_manifest(fake):
    c = load_corpus("python", fake)
    m = c.manifest()
    assert m["characters"] == sum(len(d.text) for d in c.documents)
    assert sum(s["characters"] for s in m["splits"].values()) == m["characters"]
    assert sum(s["documents"] for s in m["splits"].values()) == m["documents"] == len(c.documents)
    assert all(len(s.sha256) == 64 for s in c.sources)
    on_disk = json.loads((fake / "corpora" / "python" / "manifest.json").read_text())
    assert on_disk["characters"] == m["characters"] and on_disk["sources"]


def test_splits_disjoint_and_stable_when_documents_are_added(tmp_path):
    d = tmp_path / "f"
    write_files(d, 200)
    before = load_corpus(f"files:{d}/*.txt", tmp_path / "h")
    s1 = {doc.id: split_of(doc.id) for doc in before.documents}
    parts = [set(x.id for x in before.split(s)) for s in ("train", "valid", "test")]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert set().union(*parts) == set(s1)
    write_files(d, 300)  # 100 more documents
    after = load_corpus(f"files:{d}/*.txt", tmp_path / "h")
    assert len(after.documents) == 300
    for doc in after.documents:
        if doc.id in s1:
            assert split_of(doc.id) == s1[doc.id]
    # same document, same split in its new split list
    valid_after = {x.id for x in after.split("valid")}
    assert {i for i, s in s1.items() if s == "valid"} <= valid_after


def test_files_ids_relative_and_duplicates_removed(tmp_path):
    d = tmp_path / "f"
    write_files(d, 5)
    (d / "zcopy.txt").write_text((d / "doc0001.txt").read_text())
    c = load_corpus(f"files:{d}/*.txt", tmp_path / "h")
    ids = [x.id for x in c.documents]
    assert "files:doc0001.txt" in ids and "files:zcopy.txt" not in ids
    assert c.info["duplicates_removed"] == 1
    assert c.documents[ids.index("files:doc0001.txt")].text == (d / "doc0001.txt").read_text()


def test_dedup_keeps_smallest_id():
    docs, n = dedup([Document("b", "same"), Document("a", "same"), Document("c", "other"), Document("d", "  ")])
    assert [x.id for x in docs] == ["a", "c"] and n == 2


def test_mixture_weights(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_files(a, 400, "alpha")
    write_files(b, 400, "beta", size=2)
    h = tmp_path / "h"
    m = load_corpus(f"files:{a}/*.txt+files:{b}/*.txt", h)
    chars = {p: sum(len(x.text) for x in m.documents if x.text.startswith(p)) for p in ("alpha", "beta")}
    tot = sum(chars.values())
    assert abs(chars["alpha"] / tot - 0.5) < 0.02
    ca = load_corpus(f"files:{a}/*.txt", h).n_chars
    assert chars["alpha"] == ca  # the scarcer component is used whole
    m2 = load_corpus(f"files:{a}/*.txt:0.3+files:{b}/*.txt:0.7", h)
    c2 = {p: sum(len(x.text) for x in m2.documents if x.text.startswith(p)) for p in ("alpha", "beta")}
    assert abs(c2["alpha"] / sum(c2.values()) - 0.3) < 0.02
    assert abs(m2.info["realised_weights"][f"files:{a}/*.txt"] - 0.3) < 0.02
    # split of a document in a mixture is the one of its component
    assert all(split_of(x.id) == "valid" for x in m2.split("valid"))


def test_parse_mixture():
    assert parse_mixture("text+code") == [("text", 0.5), ("code", 0.5)]
    assert parse_mixture("text:1+code:3") == [("text", 0.25), ("code", 0.75)]
    assert parse_mixture("hf:a/b:cfg+code") == [("hf:a/b:cfg", 0.5), ("code", 0.5)]
    with pytest.raises(CorpusError):
        parse_mixture("text:0.3+code")
    with pytest.raises(CorpusError):
        parse_mixture("text:0+code:1")


def test_cache_is_reused_without_rereading(fake, monkeypatch):
    c1 = load_corpus("python", fake)

    def boom(files):
        raise AssertionError("sources re-read although the cache is valid")

    monkeypatch.setattr(sources, "_read_python", boom)
    c2 = load_corpus("python", fake)
    assert c2.documents == c1.documents


def test_corrupt_cache_is_rebuilt(fake):
    c1 = load_corpus("python", fake)
    blob = fake / "corpora" / "python" / "docs.txt"
    data = bytearray(blob.read_bytes())
    data[10] ^= 0x01
    blob.write_bytes(bytes(data))
    c2 = load_corpus("python", fake)
    assert c2.documents == c1.documents
    (fake / "corpora" / "python" / "index.json").write_text("{not json")
    assert load_corpus("python", fake).documents == c1.documents


def test_stale_cache_is_rebuilt(fake):
    c1 = load_corpus("python", fake)
    p = sources.STDLIB_DIR / "mod0.py"
    p.write_text("changed = True\n")
    c2 = load_corpus("python", fake)
    assert c2.key != c1.key
    assert next(d for d in c2.documents if d.id == "python:mod0.py").text == "changed = True\n"


# --- bad input ---------------------------------------------------------------------------------


def test_unknown_corpus_name(tmp_path):
    with pytest.raises(CorpusError, match="unknown corpus 'nope'.*Known"):
        load_corpus("nope", tmp_path)
    with pytest.raises(CorpusError, match="unknown corpus"):
        load_corpus("text+nope", tmp_path)


def test_missing_text_packages(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "DICTD_DIR", tmp_path / "none")
    monkeypatch.setattr(sources, "FORTUNE_DIR", tmp_path / "none2")
    with pytest.raises(CorpusError, match="dict-gcide.*apt-get install"):
        load_corpus("text", tmp_path)
    with pytest.raises(CorpusError, match="dict-gcide"):
        corpora.check_sources(["text+code"], tmp_path)


def test_empty_glob(tmp_path):
    with pytest.raises(CorpusError, match="matches no files"):
        load_corpus(f"files:{tmp_path}/nothing/*.txt", tmp_path)


def test_hf_dataset_unreachable(tmp_path, monkeypatch):
    import datasets

    def offline(*a, **k):
        raise ConnectionError("Couldn't reach 'someone/some-data' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(CorpusError, match="someone/some-data.*network"):
        load_corpus("hf:someone/some-data:cfg", tmp_path)


def test_hf_dataset_local(tmp_path, monkeypatch):
    """hf:<path> goes through datasets.load_dataset: a local dataset directory works offline."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    d = tmp_path / "ds"
    d.mkdir()
    (d / "train.jsonl").write_text("".join(json.dumps({"content": f"x = {i}\n"}) + "\n" for i in range(30)))
    c = load_corpus(f"hf:{d}", tmp_path / "h")
    assert len(c.documents) == 30 and c.documents[0].id.startswith(f"hf:{d}:train/")


def test_cli_summary_and_errors(fake, capsys):
    assert corpora_cli.main(["--home", str(fake), "--no-tokens", "python", "text"]) == 0
    out = capsys.readouterr().out
    assert "== python" in out and "== text" in out and "train" in out and "valid" in out
    assert corpora_cli.main(["--home", str(fake), "--no-tokens", "bogus"]) == 2
    assert "unknown corpus 'bogus'" in capsys.readouterr().err


@pytest.mark.slow
def test_real_python_corpus(tmp_path):
    """The real default target corpus on this machine (no tokens): big enough valid/test splits."""
    t0 = time.time()
    c = load_corpus("python", tmp_path)
    m = c.manifest()
    assert m["documents"] > 300 and time.time() - t0 < 60
    assert m["splits"]["valid"]["characters"] > 200_000 and m["splits"]["test"]["characters"] > 200_000
    assert not any("/test/" in d.id or d.id.startswith("python:test/") for d in c.documents)


def test_docs_corpus_renders_man_pages(tmp_path, monkeypatch):
    import shutil

    if shutil.which("man") is None or shutil.which("groff") is None:
        pytest.skip("man/groff not installed")
    man = tmp_path / "man"
    (man / "man1").mkdir(parents=True)
    (man / "man1" / "frob.1").write_text(
        '.TH FROB 1\n.SH NAME\nfrob \\- frobnicate the \\fBwidgets\\fR\n.SH DESCRIPTION\nFrob reads widgets and writes them back.\n')
    monkeypatch.setattr(sources, "MAN_DIR", man)
    c = load_corpus("docs", tmp_path / "h")
    assert [d.id for d in c.documents] == ["docs:man1/frob.1"]
    t = c.documents[0].text
    assert "frobnicate the widgets" in t and "\x08" not in t and "\\f" not in t
    monkeypatch.setattr(sources, "MAN_DIR", tmp_path / "nothing")
    with pytest.raises(CorpusError, match="manual pages"):
        load_corpus("docs", tmp_path / "h2")
