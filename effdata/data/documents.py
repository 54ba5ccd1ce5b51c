"""Documents: stable ids, hash splits, the one fixed shuffled order, and exact-duplicate removal.

Every document has an id independent of machine paths (``python:json/decoder.py``,
``text:gcide:Abandon#2``, ``code:torch/include/ATen/Tensor.h``). Its split is a hash of that id
(``split_of``), so a document always lands in the same split, and adding documents never moves others.
Exact duplicates (same text) are removed, keeping the smallest id.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Iterable, Literal

CLEAN_VERSION = "3"  # bump when cleaning/reading changes: invalidates every corpus cache
SPLIT_FRACTIONS = {"valid": 0.05, "test": 0.05}  # the rest is train
SPLIT_SALT = "effdata-split-v1"
ORDER_SALT = "effdata-order-v1"


class CorpusError(ValueError):
    """A corpus cannot be built: the message names the source and how to get it."""


@dataclass(frozen=True)
class Document:
    id: str  # stable identity, independent of machine paths
    text: str


@dataclass(frozen=True)
class Source:
    name: str
    path: str
    sha256: str


# ----------------------------------------------------------------------------------------------
# Splits and order


def _unit_hash(salt: str, doc_id: str) -> float:
    h = hashlib.sha256(f"{salt}\0{doc_id}".encode("utf-8")).digest()
    return int.from_bytes(h[:8], "big") / 2.0**64


def split_of(doc_id: str) -> Literal["train", "valid", "test"]:
    """The split of a document, a pure function of its id (train 90%, valid 5%, test 5%)."""
    u = _unit_hash(SPLIT_SALT, doc_id)
    if u < SPLIT_FRACTIONS["valid"]:
        return "valid"
    if u < SPLIT_FRACTIONS["valid"] + SPLIT_FRACTIONS["test"]:
        return "test"
    return "train"


def order_key(doc_id: str) -> bytes:
    return hashlib.sha256(f"{ORDER_SALT}\0{doc_id}".encode("utf-8")).digest()


def ordered(docs: Iterable[Document]) -> list[Document]:
    """The one fixed shuffled order (a hash of the id; independent of the other documents)."""
    return sorted(docs, key=lambda d: order_key(d.id))


def dedup(docs: Iterable[Document]) -> tuple[list[Document], int]:
    """Remove exact duplicates (same text) and empty documents, keeping the smallest id.

    Returns the documents sorted by id and the number removed."""
    best: dict[str, Document] = {}
    n = 0
    for d in docs:
        if not d.text.strip():
            n += 1
            continue
        n += 1
        h = hashlib.sha256(d.text.encode("utf-8", "surrogatepass")).digest()
        old = best.get(h)
        if old is None or d.id < old.id:
            best[h] = d
    out = sorted(best.values(), key=lambda d: d.id)
    ids = [d.id for d in out]
    if len(set(ids)) != len(ids):
        raise CorpusError("internal error: two different documents share an id")
    return out, n - len(out)
