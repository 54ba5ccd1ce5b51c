"""effdata.data.tokens: token files, cache validation, nested prefixes; the data of one run (study.rundata)."""
from __future__ import annotations

import dataclasses
import fcntl
import json

import numpy as np
import pytest
from tokenizers import Tokenizer

from effdata.data import documents, sources, tokens
from effdata.data.corpora import load_corpus
from effdata.data.tokens import DataError, prepare, train_prefix
from effdata.spec import RunSpec
from effdata.study.rundata import run_data

from test_corpora import make_sources, write_files

V = 400


@pytest.fixture
def fake(tmp_path, monkeypatch):
    make_sources(tmp_path / "src", monkeypatch, n_py=120)
    return tmp_path / "home"


def _tok(tc):
    return Tokenizer.from_file(str(tc.tokenizer_dir / "tokenizer.json"))


def test_token_files_and_character_accounting(fake):
    tc = prepare("python", V, fake)
    c = load_corpus("python", fake)
    tok = _tok(tc)
    eot = tok.token_to_id("<|endoftext|>")
    for s in ("train", "valid", "test"):
        sp = tc.splits[s]
        docs = c.split(s)
        assert sp.dtype == "uint16" and sp.n_docs == len(docs)
        assert sp.n_chars == sum(len(d.text) for d in docs)
        arr = sp.array()
        assert arr.dtype == np.uint16 and arr.size == sp.n_tokens == sp.path.stat().st_size // 2
        assert int((arr == eot).sum()) == sp.n_docs
        if sp.n_docs:
            assert arr[-1] == eot
    # the train file holds the documents in the fixed shuffled order, each followed by EOT
    arr = tc.splits["train"].array()
    dm = tc.splits["train"].docs()
    train = c.split("train")
    start = 0
    for d, (end, n) in list(zip(train, dm))[:10]:
        assert tok.decode(arr[start : end - 1].tolist()) == d.text and n == len(d.text)
        start = end
    assert [d.id for d in train] == [d.id for d in documents.ordered(train)]


def test_wide_dtype_only_when_needed():
    assert tokens._dtype(65535) == "uint16" and tokens._dtype(65536) == "uint32"


def test_nested_prefixes_in_chars_and_tokens(fake):
    tc = prepare("python", V, fake)
    total = tc.splits["train"].n_chars
    sizes = [1, 50, 333, total // 7, total // 3, total // 2, total - 1, total]
    slices = [train_prefix(tc, chars=n) for n in sizes]
    for n, sl in zip(sizes, slices):
        assert abs(sl.n_chars - n) <= max(5, 0.01 * n), (n, sl.n_chars)
        assert sl.tokens.size == sl.n_tokens
    for a, b in zip(slices, slices[1:]):
        assert a.n_tokens <= b.n_tokens
        assert np.array_equal(a.tokens, b.tokens[: a.n_tokens])
    assert slices[-1].n_tokens == tc.splits["train"].n_tokens
    t = train_prefix(tc, tokens=1000)
    assert t.n_tokens == 1000 and np.array_equal(t.tokens, slices[-1].tokens[:1000])
    assert 0 < t.n_chars < total
    with pytest.raises(DataError, match="holds"):
        train_prefix(tc, chars=total + 1)
    with pytest.raises(DataError, match="holds"):
        train_prefix(tc, tokens=tc.splits["train"].n_tokens + 1)
    with pytest.raises(DataError):
        train_prefix(tc, chars=10, tokens=10)


def test_cache_reused(fake, monkeypatch):
    tc1 = prepare("python", V, fake)
    monkeypatch.setattr(tokens, "load_corpus", lambda *a: (_ for _ in ()).throw(AssertionError("rebuilt")))
    tc2 = prepare("python", V, fake)
    assert tc2 == tc1


def test_truncated_or_corrupt_token_file_is_rebuilt(fake):
    tc = prepare("python", V, fake)
    p = tc.splits["train"].path
    good = p.read_bytes()
    p.write_bytes(good[:-2])  # truncated
    assert prepare("python", V, fake).splits["train"].path.read_bytes() == good
    bad = bytearray(good)
    bad[7] ^= 0xFF  # same size, corrupt content
    p.write_bytes(bytes(bad))
    assert prepare("python", V, fake).splits["train"].path.read_bytes() == good
    meta = p.parent / "meta.json"
    m = json.loads(meta.read_text())
    m["key"] = "stale"
    meta.write_text(json.dumps(m))
    assert prepare("python", V, fake).splits["train"].path.read_bytes() == good


def test_stale_when_source_changes(fake):
    tc1 = prepare("python", V, fake)
    (sources.STDLIB_DIR / "brand_new.py").write_text("def brand_new():\n    return 42\n")
    tc2 = prepare("python", V, fake)
    assert tc2.splits["train"].path.parent != tc1.splits["train"].path.parent
    assert sum(s.n_docs for s in tc2.splits.values()) == sum(s.n_docs for s in tc1.splits.values()) + 1


def test_mixture_and_files_tokenize(fake, tmp_path):
    write_files(tmp_path / "f", 30)
    tc = prepare(f"files:{tmp_path}/f/*.txt", V, fake)
    assert sum(s.n_docs for s in tc.splits.values()) == 30
    tm = prepare("text+code", V, fake)
    assert tm.splits["train"].n_tokens > 0


def test_run_data(fake):
    target = prepare("python", V, fake)
    spec = RunSpec(mode="scratch", size="n25k", seed=0, corpus="python", data_chars=5000, vocab_size=V)
    rd = run_data(spec, fake)
    ref = train_prefix(target, chars=5000)
    assert np.array_equal(rd.train, ref.tokens) and rd.train_chars == ref.n_chars
    assert np.array_equal(rd.valid, target.splits["valid"].array())
    assert np.array_equal(rd.test, target.splits["test"].array())
    assert rd.vocab_size == target.vocab_size and rd.pretrain_valid is None
    ft = run_data(dataclasses.replace(spec, mode="finetune", data_chars=None, data_tokens=700), fake)
    assert ft.train.size == 700
    pre = run_data(dataclasses.replace(spec, mode="pretrain", corpus="text", data_chars=None, token_budget=100), fake)
    text = prepare("text", V, fake)
    assert pre.train.size == text.splits["train"].n_tokens and np.array_equal(pre.valid, rd.valid)
    assert np.array_equal(pre.pretrain_valid, text.splits["valid"].array())
    with pytest.raises(DataError):
        run_data(dataclasses.replace(spec, data_chars=10**12), fake)


def test_tokenizer_corpora_and_vocab_in_the_spec_pick_the_tokenizer(fake):
    tc = prepare("python", 300, fake, tokenizer_corpora=["python", "code"])
    assert tc.tokenizer_dir.name.startswith("bpe-300-") and tc.tokenizer_dir != prepare("python", 300, fake).tokenizer_dir
    spec = RunSpec(mode="scratch", size="n25k", seed=0, corpus="python", data_tokens=500, vocab_size=300,
                   tokenizer_corpora=("python", "code"))
    rd = run_data(spec, fake)
    assert np.array_equal(rd.train, train_prefix(tc, tokens=500).tokens) and rd.tokenizer_dir == tc.tokenizer_dir


def test_two_tokenizers_of_one_vocabulary_keep_their_token_files(fake):
    """Two studies sharing a home with different tokenizer_corpora: neither build removes the other's files,
    and a stale build of the same corpus and tokenizer goes only when no process reads it."""
    a = prepare("python", 300, fake, tokenizer_corpora=["text", "code"])
    b = prepare("python", 300, fake, tokenizer_corpora=["python", "code"])
    a_dir, b_dir = a.splits["train"].path.parent, b.splits["train"].path.parent
    assert a.tokenizer_dir != b.tokenizer_dir and a_dir != b_dir
    # Older builds of (python, tokenizer a): one unused, one that another process reads.
    stale = a_dir.with_name(a_dir.name[:-12] + "0" * 12)
    in_use = a_dir.with_name(a_dir.name[:-12] + "1" * 12)
    for d in (stale, in_use):
        d.mkdir()
        (d / "meta.json").write_text("{}")
    held = open(in_use / ".in-use", "a")
    fcntl.flock(held, fcntl.LOCK_SH)
    # The python sources change (tokenizer a is not trained on them): a new build of python with tokenizer a.
    (sources.STDLIB_DIR / "changed.py").write_text("def changed():\n    return 1\n")
    c = prepare("python", 300, fake, tokenizer_corpora=["text", "code"])
    assert c.tokenizer_dir == a.tokenizer_dir and c.splits["train"].path.parent != a_dir
    assert not stale.exists()                           # an unused build of the same family: removed
    assert a_dir.exists()                               # read by this process (its memmaps): kept
    assert in_use.exists()                              # read by a live process: kept
    assert b_dir.exists() and len(b.splits["train"].array()) == b.splits["train"].n_tokens  # other tokenizer
    held.close()
