"""The data one run reads: a `RunSpec` -> `effdata.training.rundata.RunData`, from effdata.data's token files.

scratch/finetune: the nested prefix of ``spec.corpus``'s train split of ``spec.data_chars`` (or
``spec.data_tokens``; neither = the whole split). pretrain: the whole train split of ``spec.corpus``
(the trainer stops at ``spec.token_budget``), and that corpus's valid split as ``pretrain_valid``.
Always the fixed valid/test arrays of ``spec.target``. ``spec.vocab_size`` and
``spec.tokenizer_corpora`` pick the shared tokenizer (None: effdata.data.tokenizer's defaults).
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Callable

from effdata.data.tokenizer import DEFAULT_VOCAB_SIZE
from effdata.data.tokens import TokenizedCorpus, prepare, train_prefix
from effdata.spec import RunSpec
from effdata.training.rundata import RunData


def run_data(spec: RunSpec, home: Path | str | None = None, prepared: Callable = prepare) -> RunData:
    """`prepared(corpus, vocab, home, tokenizer_corpora=...)` gives a TokenizedCorpus: `tokens.prepare`, or
    a worker's memo of it (`prepared_once`)."""
    vocab = spec.vocab_size or DEFAULT_VOCAB_SIZE
    target = prepared(spec.target, vocab, home, tokenizer_corpora=spec.tokenizer_corpora)
    corpus = target if spec.corpus == spec.target else prepared(spec.corpus, vocab, home,
                                                                 tokenizer_corpora=spec.tokenizer_corpora)
    split = corpus.splits["train"]
    if spec.mode == "pretrain" or (spec.data_chars is None and spec.data_tokens is None):
        train, train_chars = split.array(), split.n_chars
    elif spec.data_chars is not None:
        prefix = train_prefix(corpus, chars=spec.data_chars)
        train, train_chars = prefix.tokens, prefix.n_chars
    else:
        prefix = train_prefix(corpus, tokens=spec.data_tokens)
        train, train_chars = prefix.tokens, prefix.n_chars
    return RunData(
        train=train,
        train_chars=int(train_chars),
        valid=target.splits["valid"].array(),
        test=target.splits["test"].array(),
        vocab_size=corpus.vocab_size,
        tokenizer_dir=corpus.tokenizer_dir,
        pretrain_valid=corpus.splits["valid"].array() if spec.mode == "pretrain" else None,
    )


@functools.lru_cache(maxsize=None)
def prepared_once(corpus: str, vocab: int, home: Path | str | None, *,
                  tokenizer_corpora: tuple[str, ...] | None = None) -> TokenizedCorpus:
    """`prepare` once per corpus in a process. It lists and stats every source file (about 50,000 for
    `code`, twice: tokenizer and token keys) and hashes the token files: 0.4-1.4 s per run, measured. A
    study's worker reads each corpus as validated when the worker first needed it, so all its runs read
    the same tokens even if a source file changes meanwhile (the next study's validation rebuilds)."""
    return prepare(corpus, vocab, home, tokenizer_corpora=tokenizer_corpora)
