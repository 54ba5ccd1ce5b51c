"""effdata.tokenizer: trained on tiny fake corpora, loadable by AutoTokenizer, cached."""
from __future__ import annotations

import json

import pytest
from transformers import AutoTokenizer

from effdata.data import corpora, sources, tokenizer
from effdata.data.tokenizer import EOT, get_tokenizer, tokenizer_dir

from test_corpora import make_sources

V = 400


@pytest.fixture
def fake(tmp_path, monkeypatch):
    make_sources(tmp_path / "src", monkeypatch)
    return tmp_path / "home"


def test_round_trip_through_autotokenizer(fake):
    get_tokenizer(V, fake)
    d = tokenizer_dir(V, fake)
    tok = AutoTokenizer.from_pretrained(str(d))
    assert tok.eos_token == EOT and tok.bos_token == EOT
    assert tok.convert_tokens_to_ids(EOT) == tok.eos_token_id
    assert len(tok) <= V
    for s in ["def function_3(x, y=3):\n    return x + y * 3\n",
              "ZEAL, n.  A certain nervous disorder — café ☃ 日本語\t\r\n  end  ",
              "#ifndef H1\nstatic inline int f1(int x) { return x; }\n"]:
        ids = tok(s, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids) == s
    # EOT is one token, also inside text
    ids = tok("a" + EOT + "b", add_special_tokens=False)["input_ids"]
    assert tok.eos_token_id in ids
    info = json.loads((d / "effdata.json").read_text())
    assert info["settings"]["vocab_size"] == V and info["sample_characters"] > 0


def test_balanced_sample_uses_train_splits_equally(fake):
    texts = tokenizer.balanced_sample(("python", "text", "code"), 3000, fake)
    total = {}
    for name in ("python", "text", "code"):
        train = {d.text for d in corpora.load_corpus(name, fake).split("train")}
        total[name] = sum(len(t) for t in texts if any(d.startswith(t) for d in train))
    for name, n in total.items():
        assert 900 <= n <= 1000, (name, n)


def test_cached_not_retrained(fake, monkeypatch):
    get_tokenizer(V, fake)

    def boom(*a, **k):
        raise AssertionError("retrained although cached")

    monkeypatch.setattr(tokenizer, "train_tokenizer", boom)
    assert get_tokenizer(V, fake).eos_token == EOT
    assert tokenizer.ensure_tokenizer(V, fake) == tokenizer_dir(V, fake)


def test_corrupt_tokenizer_is_retrained(fake):
    get_tokenizer(V, fake)
    d = tokenizer_dir(V, fake)
    (d / "tokenizer.json").write_text("{broken")
    tok = get_tokenizer(V, fake)
    assert tok.decode(tok("x = 1\n")["input_ids"]) == "x = 1\n"


def test_key_changes_with_sources_and_vocab(fake):
    d1 = tokenizer_dir(V, fake)
    assert tokenizer_dir(V + 100, fake) != d1
    (sources.STDLIB_DIR / "new_module.py").write_text("y = 2\n")
    assert tokenizer_dir(V, fake) != d1


def test_vocab_too_small(fake):
    with pytest.raises(ValueError, match="at least"):
        get_tokenizer(100, fake)


def test_missing_source_stops_before_training(tmp_path, monkeypatch):
    make_sources(tmp_path / "src", monkeypatch)
    monkeypatch.setattr(sources, "DICTD_DIR", tmp_path / "none")
    with pytest.raises(corpora.CorpusError, match="dict-gcide"):
        get_tokenizer(V, tmp_path / "home")
