"""Named corpora: documents with stable ids, cached and checked, and mixtures of them.

Names: the built-in corpora and external sources of ``effdata.data.sources`` (``python``,
``python-large``, ``code``, ``text``, ``docs``, ``hf:<dataset>[:<config>]``, ``files:<glob>``), and
mixtures ``a+b`` (equal character weights) or ``a:0.3+b:0.7`` (``+`` always separates components).

Built corpora are cached under ``home()/corpora/<name>/``; the cache key is a fingerprint of the
source files (relative path, size, mtime_ns) plus the cleaning version, so an unchanged corpus loads
without re-reading or re-cleaning its sources. The cached blob is checked against its sha256 on load:
a corrupt or stale cache is rebuilt, never used.

A packed home (``python -m effdata.gpu pack``: the tokenizer and token files carried to a machine that
has none of the sources, e.g. a GPU machine without Debian's text packages or this interpreter's standard
library) holds ``pinned-keys.json``: the keys its corpora had where they were built. ``corpus_key`` returns
a pinned key without looking for the sources, so the token files built from them are used as they are.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from effdata.data.documents import (CLEAN_VERSION, SPLIT_SALT, CorpusError, Document, Source, dedup, ordered,
                                    split_of)
from effdata.data.sources import BUILTIN, files_key, glob_files, load_files, load_hf
from effdata.paths import atomic_write_bytes, atomic_write_json, home as _home, sha256_file, sha256_text

DEFAULT_CORPORA = ("python", "text", "code", "text+code")

# What is being built, for a waiting user: a command line shows these (INFO) lines; nothing else does.
log = logging.getLogger(__name__)


@dataclass
class Corpus:
    name: str
    documents: list[Document]  # exact duplicates already removed
    sources: list[Source]
    key: str = ""  # cache key: fingerprint of the sources and settings
    info: dict = field(default_factory=dict)  # origin, duplicates removed, build seconds, ...

    def split(self, which: str) -> list[Document]:
        """Documents of one split in the fixed shuffled order (``ordered``)."""
        return ordered([d for d in self.documents if split_of(d.id) == which])

    @property
    def n_chars(self) -> int:
        return sum(len(d.text) for d in self.documents)

    def manifest(self) -> dict:
        splits = {}
        for s in ("train", "valid", "test"):
            docs = [d for d in self.documents if split_of(d.id) == s]
            splits[s] = {"documents": len(docs), "characters": sum(len(d.text) for d in docs)}
        return {
            "name": self.name,
            "key": self.key,
            "documents": len(self.documents),
            "characters": self.n_chars,
            "splits": splits,
            "sources": [vars(s) for s in self.sources],
            "info": self.info,
        }


# ----------------------------------------------------------------------------------------------
# Mixtures


def parse_mixture(name: str) -> list[tuple[str, float]]:
    """``a+b`` -> [(a, .5), (b, .5)]; ``a:0.3+b:0.7`` -> [(a, .3), (b, .7)] (weights normalised)."""
    parts = []
    for comp in name.split("+"):
        comp = comp.strip()
        w = None
        if ":" in comp:
            head, _, tail = comp.rpartition(":")
            try:
                w = float(tail)
                comp = head
            except ValueError:
                w = None
        if not comp:
            raise CorpusError(f"mixture '{name}': empty component")
        if w is not None and not (w > 0):
            raise CorpusError(f"mixture '{name}': weight of '{comp}' must be positive")
        parts.append((comp, w))
    if len(parts) < 2:
        raise CorpusError(f"mixture '{name}': needs at least two components")
    given = [w for _, w in parts if w is not None]
    if given and len(given) != len(parts):
        raise CorpusError(f"mixture '{name}': give a weight to every component or to none")
    total = sum(given) if given else len(parts)
    return [(c, (w if w is not None else 1.0) / total) for c, w in parts]


def is_mixture(name: str) -> bool:
    """``+`` always separates mixture components (a files: glob cannot contain ``+``)."""
    return "+" in name


def mix(components: list[tuple[Corpus, float]], name: str) -> Corpus:
    """Document-level mixture: each component's documents in the fixed shuffled order until its
    share of characters matches its weight; the total is limited by the scarcest component."""
    total = min(c.n_chars / w for c, w in components)
    docs, sources, realised = [], [], {}
    for c, w in components:
        target = w * total
        got = 0
        for d in ordered(c.documents):
            if got >= target - 0.5:
                break
            docs.append(d)
            got += len(d.text)
        realised[c.name] = got
        sources += c.sources
    docs, ndup = dedup(docs)
    tot = sum(realised.values()) or 1
    info = {
        "origin": "mixture of " + ", ".join(f"{c.name} ({w:.0%} of characters)" for c, w in components),
        "weights": {c.name: w for c, w in components},
        "realised_weights": {k: v / tot for k, v in realised.items()},
        "duplicates_removed": ndup,
    }
    key = sha256_text(json.dumps([name, [(c.key, w) for c, w in components]]))
    return Corpus(name, docs, sources, key, info)


# ----------------------------------------------------------------------------------------------
# Cache and the public entry points


def safe_name(name: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._+-]+", "_", name).strip("_")[:60]
    if s != name:
        s = f"{s}-{sha256_text(name)[:8]}"
    return s


def cache_dir(name: str, home: Path | None) -> Path:
    return _home(home) / "corpora" / safe_name(name)


PINNED_KEYS = "pinned-keys.json"


def pinned_keys(home: Path | None = None) -> dict[str, str]:
    """The corpus keys a packed home was built with (``PINNED_KEYS``), or {} for an ordinary home."""
    path = _home(home) / PINNED_KEYS
    if not path.exists():
        return {}
    try:
        keys = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CorpusError(f"{path} is unreadable ({exc}); unpack the carried home again") from None
    if not isinstance(keys, dict) or not all(isinstance(v, str) for v in keys.values()):
        raise CorpusError(f"{path} must map corpus names to keys")
    return keys


def corpus_key(name: str, home: Path | None = None) -> str:
    """A cheap key that changes when the corpus's sources or settings change (no reading).

    For builtin corpora and files: it is a fingerprint of (path, size, mtime) of every source file;
    hf: datasets are loaded (from the datasets cache) and keyed by their fingerprints. In a packed home,
    the key pinned for the name (``pinned_keys``): its sources are not there to look at."""
    name = name.strip()
    pinned = pinned_keys(home).get(name)
    if pinned is not None:
        return pinned
    if is_mixture(name):
        return sha256_text(json.dumps([name, [(corpus_key(c, home), w) for c, w in parse_mixture(name)]]))
    if name in BUILTIN:
        return files_key(BUILTIN[name]().files, name)
    if name.startswith("files:"):
        return files_key(glob_files(name), name)
    if name.startswith("hf:"):
        return load_corpus(name, home).key
    raise CorpusError(_unknown(name))


def _unknown(name: str) -> str:
    return (
        f"unknown corpus '{name}'. Known: {', '.join(BUILTIN)}, hf:<dataset>[:<config>], files:<glob>, "
        "and mixtures such as text+code or text:0.3+code:0.7"
    )


def _save(c: Corpus, home: Path | None) -> None:
    d = cache_dir(c.name, home)
    d.mkdir(parents=True, exist_ok=True)
    blob = "".join(doc.text for doc in c.documents).encode("utf-8", "surrogatepass")
    atomic_write_bytes(d / "docs.txt", blob)
    atomic_write_json(d / "index.json", {"ids": [x.id for x in c.documents], "lengths": [len(x.text) for x in c.documents]})
    m = c.manifest()
    m["cache"] = {"docs_sha256": hashlib.sha256(blob).hexdigest(), "index_sha256": sha256_file(d / "index.json")}
    atomic_write_json(d / "manifest.json", m)


def _load_cached(name: str, key: str, home: Path | None) -> Corpus | None:
    d = cache_dir(name, home)
    try:
        m = json.loads((d / "manifest.json").read_text())
        if m.get("key") != key or m.get("name") != name:
            return None
        blob = (d / "docs.txt").read_bytes()
        if hashlib.sha256(blob).hexdigest() != m["cache"]["docs_sha256"]:
            return None
        if sha256_file(d / "index.json") != m["cache"]["index_sha256"]:
            return None
        idx = json.loads((d / "index.json").read_text())
        text = blob.decode("utf-8", "surrogatepass")
        docs, pos = [], 0
        for i, n in zip(idx["ids"], idx["lengths"]):
            docs.append(Document(i, text[pos : pos + n]))
            pos += n
        if pos != len(text) or len(docs) != m["documents"]:
            return None
        sources = [Source(**s) for s in m["sources"]]
        return Corpus(name, docs, sources, key, m.get("info", {}))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _build(name: str, home: Path | None) -> Corpus:
    t0 = time.time()
    if name.startswith("hf:"):
        log.info("building corpus %s: loading the dataset ...", name)
        raw, sources, origin = load_hf(name, home)
        key = sha256_text(json.dumps([CLEAN_VERSION, SPLIT_SALT, name, [vars(s) for s in sources]]))
    else:
        if name.startswith("files:"):
            files = glob_files(name)
            log.info("building corpus %s: %s files ...", name, f"{len(files):,}")
            raw = load_files(name, files, home)
            origin = f"local files {name[len('files:'):]} (read with datasets)"
        else:
            listing = BUILTIN[name]()
            files, origin = listing.files, listing.origin
            log.info("building corpus %s: %s files ...", name, f"{len(files):,}")
            raw = list(listing.read(files))
        key = files_key(files, name)
        sources = [Source(label, str(p), sha256_file(p)) for label, p in files]
    docs, ndup = dedup(raw)
    if not docs:
        raise CorpusError(f"corpus '{name}': its sources hold no non-empty documents")
    return Corpus(name, docs, sources, key, {"origin": origin, "duplicates_removed": ndup, "build_seconds": round(time.time() - t0, 2)})


def load_corpus(name: str, home: Path | None = None) -> Corpus:
    """Load (from cache) or build the named corpus or mixture. Raises CorpusError for bad input."""
    name = name.strip()
    if not name:
        raise CorpusError(_unknown(name))
    if is_mixture(name):
        comps = parse_mixture(name)
        for c, _ in comps:  # check every name before loading anything
            if not (c in BUILTIN or c.startswith("files:") or c.startswith("hf:")):
                raise CorpusError(_unknown(c))
        loaded = [(load_corpus(c, home), w) for c, w in comps]
        log.info("mixing corpus %s from %s", name, ", ".join(f"{c.name} ({w:.0%})" for c, w in loaded))
        return mix(loaded, name)
    if not (name in BUILTIN or name.startswith("files:") or name.startswith("hf:")):
        raise CorpusError(_unknown(name))
    if name.startswith("hf:"):
        c = _build(name, home)  # datasets caches it; its fingerprint is the key
        cached = _load_cached(name, c.key, home)
        if cached is None:
            _save(c, home)
        return c
    key = corpus_key(name, home)
    cached = _load_cached(name, key, home)
    if cached is not None:
        return cached
    c = _build(name, home)
    _save(c, home)
    return c


def check_sources(names: Iterable[str], home: Path | None = None) -> None:
    """Raise CorpusError now if any named corpus cannot be built (call before training starts)."""
    for n in names:
        if is_mixture(n):
            check_sources([c for c, _ in parse_mixture(n)], home)
        else:
            corpus_key(n, home)
