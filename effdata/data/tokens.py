"""Tokenized corpora on disk, cache validation, and nested train prefixes.

Layout: ``home()/tokens/<corpus>-v<vocab>-<key>/`` holds, per split, ``<split>.bin`` (token ids,
``uint16`` when the vocabulary fits, else ``uint32``; every document is followed by one
``<|endoftext|>``), ``<split>.docs.npy`` (int64 ``[n_docs, 2]``: token end offset, characters of
each document) and ``meta.json`` (counts, dtype, file sha256s, and the key). The key hashes the corpus
key (its source fingerprint), the tokenizer's ``tokenizer.json`` and the settings; a missing,
truncated, corrupt or stale file is rebuilt, never used.

Documents of every split are stored in the one fixed shuffled order (``corpora.ordered``: a hash of the
id), so data fractions are nested prefixes of the train split.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from effdata.data.corpora import corpus_key, load_corpus, safe_name
from effdata.fmt import si
from effdata.paths import atomic_write, atomic_write_bytes, atomic_write_json, home as _home, sha256_file, sha256_text
from effdata.data.tokenizer import DEFAULT_VOCAB_SIZE, EOT, ensure_tokenizer, tokenizer_hash

TOKENS_VERSION = "1"
SPLITS = ("train", "valid", "test")
BATCH_CHARS = 2_000_000  # characters per encode_batch call
SAY_EVERY = 15.0  # seconds between 'how far' lines of a long tokenization where no bar is drawn (a log)

log = logging.getLogger(__name__)  # what is being built, for a command line to show (effdata.data.corpora)


class DataError(ValueError):
    """Asked for more data than a split holds, or for an impossible slice."""


@dataclass(frozen=True)
class TokenSplit:
    path: Path
    n_tokens: int
    n_chars: int
    n_docs: int
    dtype: str

    def array(self) -> np.ndarray:
        """The split's tokens as a read-only memmap (EOT after every document)."""
        if self.n_tokens == 0:
            return np.zeros(0, dtype=self.dtype)
        return np.memmap(self.path, dtype=self.dtype, mode="r", shape=(self.n_tokens,))

    def docs(self) -> np.ndarray:
        """int64 [n_docs, 2]: cumulative token end offset (incl. EOT) and characters of each document."""
        return np.load(self.path.with_suffix(".docs.npy"))


@dataclass(frozen=True)
class TokenizedCorpus:
    name: str
    tokenizer_dir: Path
    vocab_size: int
    splits: dict[str, TokenSplit]


@dataclass(frozen=True)
class DataSlice:
    tokens: np.ndarray
    n_tokens: int
    n_chars: int


def _dtype(vocab: int) -> str:
    return "uint16" if vocab <= 65535 else "uint32"


def _encode_split(docs, tok, dtype: str, desc: str):
    """Token ids of documents (EOT after each), and per-document [end offset, chars]."""
    from tqdm import tqdm

    backend = tok  # a tokenizers.Tokenizer
    eot = tok.token_to_id(EOT)
    chunks, meta = [], np.zeros((len(docs), 2), dtype=np.int64)
    end = 0
    i = 0
    total_chars = sum(len(d.text) for d in docs)
    said, done = time.monotonic(), 0
    with tqdm(total=total_chars, unit="char", unit_scale=True, desc=desc, leave=False, disable=None) as bar:
        while i < len(docs):
            j, size = i, 0
            while j < len(docs) and (size == 0 or size + len(docs[j].text) <= BATCH_CHARS):
                size += len(docs[j].text)
                j += 1
            encs = backend.encode_batch([d.text for d in docs[i:j]], add_special_tokens=False)
            for k, e in enumerate(encs):
                ids = np.asarray(e.ids, dtype=dtype)
                chunks.append(ids)
                chunks.append(np.asarray([eot], dtype=dtype))
                end += len(ids) + 1
                meta[i + k] = (end, len(docs[i + k].text))
            bar.update(size)
            i, done = j, done + size
            if bar.disable and time.monotonic() - said >= SAY_EVERY:  # a terminal has the bar; a log gets a line
                said = time.monotonic()
                log.info("%s: %s of %s characters", desc, si(done), si(total_chars))
    arr = np.concatenate(chunks) if chunks else np.zeros(0, dtype=dtype)
    return arr, meta


def _token_key(corpus: str, tdir: Path, home) -> str:
    return sha256_text(json.dumps([TOKENS_VERSION, corpus, corpus_key(corpus, home), tokenizer_hash(tdir)]))


def _family(corpus: str, vocab_size: int, tdir: Path) -> str:
    """Directory-name prefix shared by every build of one corpus with one tokenizer (any source version)."""
    return f"{safe_name(corpus)}-v{vocab_size}-t{tokenizer_hash(tdir)[:10]}-"


def _out_dir(corpus: str, vocab_size: int, tdir: Path, key: str, home) -> Path:
    return _home(home) / "tokens" / f"{_family(corpus, vocab_size, tdir)}{key[:12]}"


# Directories this process reads, each held under a shared lock for the life of the process: a build
# elsewhere removes a stale directory only when it can take that lock exclusively (nobody reads it).
_IN_USE: dict[Path, object] = {}


def _hold(d: Path) -> None:
    if d in _IN_USE:
        return
    handle = open(d / ".in-use", "a")  # noqa: SIM115  (kept open: the lock lives as long as the process)
    fcntl.flock(handle, fcntl.LOCK_SH)
    _IN_USE[d] = handle


def _remove_stale(final: Path, family: str) -> None:
    """Remove older builds of the same corpus, vocabulary and tokenizer, unless a process reads them.

    Only the family's own directories: another tokenizer of the same vocabulary size (another study's
    `tokenizer_corpora` sharing this home) has another family and is never touched."""
    for old in final.parent.glob(family + "*"):
        if old == final or not old.is_dir() or len(old.name) != len(final.name):
            continue
        try:
            handle = open(old / ".in-use", "a")  # noqa: SIM115
        except OSError:
            continue
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # read by a live process: its turn to clean up comes later
            shutil.rmtree(old, ignore_errors=True)


def _load_cached(d: Path, key: str, name: str, tdir: Path, verify: bool = True) -> TokenizedCorpus | None:
    try:
        meta = json.loads((d / "meta.json").read_text())
        if meta.get("key") != key:
            return None
        splits = {}
        for s in SPLITS:
            m = meta["splits"][s]
            p = d / f"{s}.bin"
            item = np.dtype(m["dtype"]).itemsize
            if p.stat().st_size != m["n_tokens"] * item:
                return None
            if verify and sha256_file(p) != m["sha256"]:
                return None
            dp = d / f"{s}.docs.npy"
            if verify and sha256_file(dp) != m["docs_sha256"]:
                return None
            splits[s] = TokenSplit(p, m["n_tokens"], m["n_chars"], m["n_docs"], m["dtype"])
        return TokenizedCorpus(name, tdir, meta["vocab_size"], splits)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def prepare(corpus: str, vocab_size: int = DEFAULT_VOCAB_SIZE, home=None, *,
            tokenizer_corpora: list[str] | tuple[str, ...] | None = None) -> TokenizedCorpus:
    """Tokenize a corpus (or load its cache). Rebuilt when sources, tokenizer or settings change.

    ``tokenizer_corpora``: the corpora the shared BPE is trained on (default python, text, code)."""
    vocab_size = vocab_size or DEFAULT_VOCAB_SIZE
    tdir = ensure_tokenizer(vocab_size, home, corpora=tuple(tokenizer_corpora) if tokenizer_corpora else None)
    key = _token_key(corpus, tdir, home)
    d = _out_dir(corpus, vocab_size, tdir, key, home)
    tc = _load_cached(d, key, corpus, tdir)
    if tc is not None:
        _hold(d)
        return tc
    t0 = time.time()
    c = load_corpus(corpus, home)
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tdir / "tokenizer.json"))
    vocab = tok.get_vocab_size(with_added_tokens=True)
    dtype = _dtype(vocab)
    log.info("tokenizing %s: %s characters, %s documents ...", corpus, si(c.n_chars), f"{len(c.documents):,}")
    final, d = d, d.parent / f".{d.name}.tmp-{os.getpid()}"  # build aside, then rename into place
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    meta = {"key": key, "corpus": corpus, "corpus_key": c.key, "vocab_size": vocab, "tokenizer_dir": str(tdir),
            "tokenizer_sha256": tokenizer_hash(tdir), "version": TOKENS_VERSION, "splits": {}}
    for s in SPLITS:
        docs = c.split(s)  # fixed shuffled order
        arr, dm = _encode_split(docs, tok, dtype, f"tokenize {corpus}/{s}")
        atomic_write_bytes(d / f"{s}.bin", arr.tobytes())
        atomic_write(d / f"{s}.docs.npy", lambda f, dm=dm: np.save(f, dm))
        meta["splits"][s] = {
            "n_tokens": int(arr.size), "n_chars": int(dm[:, 1].sum()) if len(dm) else 0, "n_docs": len(docs),
            "dtype": dtype, "sha256": hashlib.sha256(arr.tobytes()).hexdigest(),
            "docs_sha256": sha256_file(d / f"{s}.docs.npy"),
        }
    meta["build_seconds"] = round(time.time() - t0, 2)
    atomic_write_json(d / "meta.json", meta)  # last: marks the directory complete
    tc = _load_cached(final, key, corpus, tdir)
    if tc is not None:  # another process finished the same build first
        shutil.rmtree(d, ignore_errors=True)
        _hold(final)
        return tc
    if final.exists():
        shutil.rmtree(final)
    os.replace(d, final)
    _hold(final)
    _remove_stale(final, _family(corpus, vocab_size, tdir))
    tc = _load_cached(final, key, corpus, tdir, verify=False)
    assert tc is not None
    return tc


def train_prefix(tc: TokenizedCorpus, *, chars: int | None = None, tokens: int | None = None) -> DataSlice:
    """A nested prefix of the shuffled train split, sized in characters or tokens.

    Whole documents while they fit, then the leading part of the next one. Tokens are exact; the
    characters of a partial document are accounted pro rata by that document's characters per token
    (whole documents count exactly), so ``n_chars`` is ``chars`` up to rounding. A smaller prefix is
    always a prefix of a larger one."""
    if (chars is None) == (tokens is None):
        raise DataError("train_prefix: give exactly one of chars= or tokens=")
    split = tc.splits["train"]
    dm = split.docs()
    ends = dm[:, 0] if len(dm) else np.zeros(0, dtype=np.int64)
    cchars = np.cumsum(dm[:, 1]) if len(dm) else np.zeros(0, dtype=np.int64)
    starts = np.concatenate([[0], ends[:-1]]) if len(dm) else ends
    if chars is not None:
        if chars <= 0:
            raise DataError(f"train_prefix: chars must be positive, got {chars}")
        if chars > split.n_chars:
            raise DataError(f"{tc.name}: asked for {chars:,} characters but its train split holds {split.n_chars:,}")
        k = int(np.searchsorted(cchars, chars, side="right"))  # whole documents that fit
        base_chars = int(cchars[k - 1]) if k else 0
        base_tok = int(ends[k - 1]) if k else 0
        rest = chars - base_chars
        if rest == 0 or k >= len(dm):
            n_tok, n_chars = base_tok, base_chars
        else:
            doc_tok = int(ends[k] - starts[k])
            doc_chars = int(dm[k, 1])
            t = min(doc_tok, int(round(rest / doc_chars * doc_tok)))
            n_tok, n_chars = base_tok + t, base_chars + int(round(t * doc_chars / doc_tok))
    else:
        if tokens <= 0:
            raise DataError(f"train_prefix: tokens must be positive, got {tokens}")
        if tokens > split.n_tokens:
            raise DataError(f"{tc.name}: asked for {tokens:,} tokens but its train split holds {split.n_tokens:,}")
        k = int(np.searchsorted(ends, tokens, side="right"))
        base_chars = int(cchars[k - 1]) if k else 0
        base_tok = int(ends[k - 1]) if k else 0
        t = tokens - base_tok
        n_tok = tokens
        if t and k < len(dm):
            doc_tok = int(ends[k] - starts[k])
            n_chars = base_chars + int(round(t * int(dm[k, 1]) / doc_tok))
        else:
            n_chars = base_chars
    return DataSlice(tokens=split.array()[:n_tok], n_tokens=n_tok, n_chars=n_chars)
