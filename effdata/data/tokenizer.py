"""The one shared byte-level BPE, trained on a balanced sample of the python, text and code corpora.

``get_tokenizer(vocab_size)`` trains it once (a few seconds on a few MB) and caches it under
``home()/tokenizer/bpe-<vocab>-<key>/``, a directory that ``transformers.AutoTokenizer.from_pretrained``
loads. The key hashes the sample's corpora keys and the settings below, so a changed source or setting
trains a new tokenizer instead of silently reusing an old one.

The default vocabulary size was chosen by measuring training speed in characters per second of tiny
GPT-2 models (``benchmarks/bench_vocab.py``; table in docs/data.md).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

from effdata.fmt import si
from effdata.paths import atomic_write_json, home as _home, sha256_file, sha256_text

DEFAULT_VOCAB_SIZE: int = 2048
EOT = "<|endoftext|>"
SAMPLE_CORPORA: tuple[str, ...] = ("python", "text", "code")
SAMPLE_CHARS: int = 6_000_000  # total; split equally between SAMPLE_CORPORA (train splits only)
MAX_DOC_CHARS: int = 100_000  # one document contributes at most this much to the sample
TOKENIZER_VERSION = "1"

log = logging.getLogger(__name__)  # what is being built, for a command line to show (effdata.data.corpora)


def _settings(vocab_size: int, corpora: tuple[str, ...], sample_chars: int) -> dict:
    return {
        "version": TOKENIZER_VERSION,
        "vocab_size": vocab_size,
        "corpora": list(corpora),
        "sample_chars": sample_chars,
        "max_doc_chars": MAX_DOC_CHARS,
        "model": "byte-level BPE",
        "special": [EOT],
    }


def _key(vocab_size: int, corpora: tuple[str, ...], sample_chars: int, home) -> str:
    from effdata.data.corpora import corpus_key

    keys = [corpus_key(c, home) for c in corpora]
    return sha256_text(json.dumps([_settings(vocab_size, corpora, sample_chars), keys]))[:16]


def tokenizer_dir(vocab_size: int = DEFAULT_VOCAB_SIZE, home=None, *, corpora: tuple[str, ...] | None = None,
                  sample_chars: int | None = None) -> Path:
    corpora = tuple(corpora or SAMPLE_CORPORA)
    sample_chars = sample_chars or SAMPLE_CHARS
    return _home(home) / "tokenizer" / f"bpe-{vocab_size}-{_key(vocab_size, corpora, sample_chars, home)}"


def balanced_sample(corpora: tuple[str, ...], sample_chars: int, home=None) -> list[str]:
    """Equal characters from each corpus's train split, documents in the fixed shuffled order."""
    from effdata.data.corpora import load_corpus

    per = sample_chars // len(corpora)
    texts: list[str] = []
    for name in corpora:
        got = 0
        for d in load_corpus(name, home).split("train"):
            if got >= per:
                break
            t = d.text[: min(MAX_DOC_CHARS, per - got)]
            texts.append(t)
            got += len(t)
    return texts


def train_tokenizer(texts, vocab_size: int):
    """A ``PreTrainedTokenizerFast`` byte-level BPE trained on ``texts`` (iterable of str)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if vocab_size < 257 + 1:
        raise ValueError(f"vocab_size must be at least 258 (256 bytes + {EOT} + one merge), got {vocab_size}")
    if vocab_size > 2**32:
        raise ValueError("vocab_size too large")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=2,
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer, length=len(texts) if hasattr(texts, "__len__") else None)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=EOT,
        eos_token=EOT,
        unk_token=EOT,
        pad_token=EOT,
        model_max_length=2**31 - 1,  # documents are long; the trainer cuts contexts itself
        clean_up_tokenization_spaces=False,
    )


def get_tokenizer(vocab_size: int = DEFAULT_VOCAB_SIZE, home=None, *, corpora: tuple[str, ...] | None = None,
                  sample_chars: int | None = None):
    """The shared tokenizer (trained once, then loaded from ``tokenizer_dir``).

    ``eos_token`` = ``bos_token`` = ``unk_token`` = ``pad_token`` = ``<|endoftext|>``."""
    from transformers import AutoTokenizer

    corpora = tuple(corpora or SAMPLE_CORPORA)
    sample_chars = sample_chars or SAMPLE_CHARS
    d = tokenizer_dir(vocab_size, home, corpora=corpora, sample_chars=sample_chars)
    tok = _load_cached(d)
    if tok is not None:
        return tok
    import time

    t0 = time.time()
    log.info("training tokenizer bpe-%d on %s: reading its sample (up to %s characters) ...", vocab_size,
             ", ".join(corpora), si(sample_chars))
    texts = balanced_sample(corpora, sample_chars, home)
    log.info("training tokenizer bpe-%d on %s characters ...", vocab_size, si(sum(map(len, texts))))
    tok = train_tokenizer(texts, vocab_size)
    tok.save_pretrained(str(d))
    info = {
        "settings": _settings(vocab_size, corpora, sample_chars),
        "sample_documents": len(texts),
        "sample_characters": sum(map(len, texts)),
        "train_seconds": round(time.time() - t0, 2),
        "tokenizer_json_sha256": sha256_file(d / "tokenizer.json"),
        "actual_vocab_size": len(tok),
    }
    atomic_write_json(d / "effdata.json", info)  # written last: marks the directory complete
    return AutoTokenizer.from_pretrained(str(d))


def ensure_tokenizer(vocab_size: int = DEFAULT_VOCAB_SIZE, home=None, **kw) -> Path:
    """The tokenizer directory, training it first if it is missing or corrupt (no transformers import
    when it is already there)."""
    d = tokenizer_dir(vocab_size, home, **kw)
    try:
        info = json.loads((d / "effdata.json").read_text())
        if sha256_file(d / "tokenizer.json") == info["tokenizer_json_sha256"]:
            return d
    except (OSError, ValueError, KeyError):
        pass
    get_tokenizer(vocab_size, home, **kw)
    return d


def _load_cached(d: Path):
    """Load a cached tokenizer dir if complete and intact, else None (it will be retrained)."""
    from transformers import AutoTokenizer

    try:
        info = json.loads((d / "effdata.json").read_text())
        if sha256_file(d / "tokenizer.json") != info["tokenizer_json_sha256"]:
            return None
        tok = AutoTokenizer.from_pretrained(str(d))
        if tok.eos_token != EOT:
            return None
        return tok
    except Exception:
        return None


def tokenizer_hash(d: Path | str) -> str:
    """Identity of a saved tokenizer (sha256 of its tokenizer.json)."""
    return sha256_file(Path(d) / "tokenizer.json")
