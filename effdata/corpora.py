"""Named corpora: lists of documents with stable ids, cleaning, dedup, hash splits and manifests.

Names (see ``load_corpus``):

* ``python``        the running interpreter's standard library (``.py``; no ``test``/``tests`` packages,
                    no site-packages). The target distribution.
* ``python-large``  ``python`` plus every ``.py`` file of the interpreter's site-packages.
* ``code``          C/C++ headers and sources: torch's include dir, the interpreter's include dir,
                    /usr/include. No Python.
* ``text``          English prose from Debian's dict-gcide, dict-wn, dict-jargon, dict-devil, fortunes.
* ``docs``          manual pages of sections 1, 5, 7, 8 rendered to plain text (optional, slow).
* ``hf:<dataset>[:<config>]``  any Hugging Face dataset the ``datasets`` library can load.
* ``files:<glob>``  local files through ``datasets`` (text files: one file = one document;
                    .json/.jsonl/.csv/.parquet: one row = one document, column ``text``/``content``).
* mixtures ``a+b`` (equal character weights) or ``a:0.3+b:0.7`` (``+`` always separates components).

Every document has an id independent of machine paths (``python:json/decoder.py``,
``text:gcide:Abandon#2``, ``code:torch/include/ATen/Tensor.h``). Its split is a hash of that id
(``split_of``), so a document always lands in the same split, and adding documents never moves others.
Exact duplicates (same text) are removed, keeping the smallest id.

Built corpora are cached under ``home()/corpora/<name>/``; the cache key is a fingerprint of the
source files (relative path, size, mtime_ns) plus the cleaning version, so an unchanged corpus loads
without re-reading or re-cleaning its sources. The cached blob is checked against its sha256 on load:
a corrupt or stale cache is rebuilt, never used.
"""
from __future__ import annotations

import base64
import glob as _glob
import gzip
import hashlib
import json
import os
import re
import subprocess
import sys
import sysconfig
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Literal

from effdata.paths import atomic_write_bytes, atomic_write_json, home as _home, sha256_file, sha256_text

# ----------------------------------------------------------------------------------------------
# Settings (module-level so tests can monkeypatch the source roots)

CLEAN_VERSION = "3"  # bump when cleaning/reading changes: invalidates every corpus cache
SPLIT_FRACTIONS = {"valid": 0.05, "test": 0.05}  # the rest is train
SPLIT_SALT = "effdata-split-v1"
ORDER_SALT = "effdata-order-v1"
DEFAULT_CORPORA = ("python", "text", "code", "text+code")

STDLIB_DIR: Path = Path(sysconfig.get_paths()["stdlib"])
SITE_PACKAGES_DIRS: list[Path] = []  # filled lazily by _site_packages() unless monkeypatched
DICTD_DIR = Path("/usr/share/dictd")
FORTUNE_DIR = Path("/usr/share/games/fortunes")
DICTD_NAMES = ("gcide", "wn", "jargon", "devil")
MAN_DIR = Path("/usr/share/man")
MAN_SECTIONS = ("1", "5", "7", "8")
CODE_SUFFIXES = {".h", ".hpp", ".hh", ".c", ".cc", ".cpp", ".cxx", ".cuh", ".cu", ".inl"}
CODE_DIRS: dict[str, Path] | None = None  # label -> dir; None = _default_code_dirs()

TEXT_PACKAGES_HINT = "sudo apt-get install dict-gcide dict-wn dict-jargon dict-devil fortunes (or: make text-packages)"
EXCLUDED_PY_DIRS = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__"}


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


# ----------------------------------------------------------------------------------------------
# Source listings (cheap: paths and stat only) and readers


@dataclass
class _Plan:
    """What a builtin corpus reads: files (label -> abs path) and a reader producing documents."""

    files: list[tuple[str, Path]]  # (relative label used in ids/sources, path)
    read: Callable[[list[tuple[str, Path]]], Iterable[Document]]
    origin: str


def _fingerprint(files: list[tuple[str, Path]], extra: str = "") -> str:
    h = hashlib.sha256(f"{CLEAN_VERSION}\0{SPLIT_SALT}\0{extra}\0".encode())
    for label, p in files:
        st = p.stat()
        h.update(f"{label}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _read_text_file(p: Path) -> str | None:
    data = p.read_bytes()
    if b"\0" in data:
        return None
    return data.decode("utf-8", errors="replace")


def _walk(root: Path, suffixes: set[str], skip_dirs: set[str] = frozenset()) -> list[Path]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in skip_dirs and not d.startswith("."))
        for f in sorted(filenames):
            if os.path.splitext(f)[1] in suffixes:
                p = Path(dirpath) / f
                if p.is_file():
                    out.append(p)
    return out


def _read_plain(prefix: str) -> Callable[[list[tuple[str, Path]]], Iterable[Document]]:
    def read(files):
        for label, p in files:
            text = _read_text_file(p)
            if text is not None:
                yield Document(f"{prefix}:{label}", text)

    return read


GENERATED_PY_MARKERS = ("Python Character Mapping Codec", "# Autogenerated by Sphinx")


def _read_python(files):
    """Python sources, minus generated data files (charmap codec tables, pydoc's topic text)."""
    for label, p in files:
        text = _read_text_file(p)
        if text is None or label.startswith("pydoc_data/") or any(m in text[:2000] for m in GENERATED_PY_MARKERS):
            continue
        yield Document(f"python:{label}", text)


def _site_packages() -> list[Path]:
    if SITE_PACKAGES_DIRS:
        return list(SITE_PACKAGES_DIRS)
    import site

    dirs = []
    for d in site.getsitepackages() + [sysconfig.get_paths()["purelib"]]:
        p = Path(d)
        if p.is_dir() and p not in dirs:
            dirs.append(p)
    return dirs


def _plan_python(large: bool) -> _Plan:
    root = Path(STDLIB_DIR)
    if not (root / "os.py").is_file() and not any(root.glob("*.py")):
        raise CorpusError(
            f"corpus 'python': no standard library source found at {root}. "
            "Install a Python with its .py sources (e.g. Debian: apt-get install libpython3-stdlib)."
        )
    files = [(p.relative_to(root).as_posix(), p) for p in _walk(root, {".py"}, EXCLUDED_PY_DIRS)]
    origin = f"standard library of Python {sys.version.split()[0]} ({root}); test packages and generated tables excluded"
    if large:
        for sp in _site_packages():
            files += [
                ("site-packages/" + p.relative_to(sp).as_posix(), p)
                for p in _walk(sp, {".py"}, {"__pycache__"})
            ]
        origin += "; plus .py files of site-packages " + ", ".join(str(s) for s in _site_packages())
    return _Plan(files, _read_python, origin)


def _default_code_dirs() -> dict[str, Path]:
    if CODE_DIRS is not None:
        return dict(CODE_DIRS)
    dirs: dict[str, Path] = {}
    import importlib.util

    spec = importlib.util.find_spec("torch")
    if spec and spec.submodule_search_locations:
        inc = Path(list(spec.submodule_search_locations)[0]) / "include"
        if inc.is_dir():
            dirs["torch/include"] = inc
    inc = Path(sysconfig.get_paths()["include"])
    if inc.is_dir():
        dirs["python-include"] = inc
    if Path("/usr/include").is_dir():
        dirs["usr/include"] = Path("/usr/include")
    return dirs


def _plan_code() -> _Plan:
    dirs = _default_code_dirs()
    files = []
    for label, d in dirs.items():
        files += [(f"{label}/{p.relative_to(d).as_posix()}", p) for p in _walk(Path(d), CODE_SUFFIXES)]
    if not files:
        raise CorpusError(
            "corpus 'code': no C/C++ headers or sources found (looked in torch's include dir, the "
            "interpreter's include dir and /usr/include). Install them, e.g. apt-get install "
            "libc6-dev python3-dev, or use files:<glob> for your own code."
        )
    return _Plan(files, _read_plain("code"), "C/C++ headers and sources in " + ", ".join(f"{d}" for d in dirs.values()))


# --- text: dictd + fortunes ---------------------------------------------------------------------

_B64 = {c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}


def _b64(s: str) -> int:
    n = 0
    for c in s:
        n = n * 64 + _B64[c]
    return n


_TAG_RE = re.compile(r"<[^<>\n]{1,80}>")
_PRON_RE = re.compile(r"\\[^\\\n]{0,120}\\")
_SRC_TAG_RE = re.compile(r"\[(?:[^\]\n]*(?:Webster|PJC|WordNet|Century|Supp|Note)[^\]\n]*)\]")
_WN_XREF_RE = re.compile(r"\[(?:syn|ant|also|see):[^\]]*\]", re.S)
_BRACES_RE = re.compile(r"[{}]")
_WS_RE = re.compile(r"[ \t]+")


def _reflow(text: str) -> str:
    """Paragraphs (blank-line separated) with inner line breaks joined by spaces."""
    paras = []
    for para in re.split(r"\n\s*\n", text):
        lines = [_WS_RE.sub(" ", ln.strip()) for ln in para.splitlines()]
        lines = [ln for ln in lines if ln]
        if lines:
            paras.append(" ".join(lines))
    return "\n\n".join(paras).strip() + "\n" if paras else ""


_ACCENT = {"'": "\u0301", "`": "\u0300", '"': "\u0308", "=": "\u0304", "~": "\u0303", "^": ""}
_GCIDE_CHAR_RE = re.compile(r"\[([`'\"=~.^-]?)([a-z])([`'\"=~.^-]?)\]")
_GCIDE_LIGATURES = {"[ae]": "æ", "[AE]": "Æ", "[oe]": "œ", "[OE]": "Œ", "[eth]": "ð", "[thorn]": "þ"}


def _gcide_char(m: re.Match) -> str:
    """gcide's ASCII accents: ['e] -> é, [`e] -> è, [=a] -> ā; other marks are dropped."""
    if not (m.group(1) or m.group(3)):
        return m.group(0)
    mark = _ACCENT.get(m.group(1) or m.group(3), "")
    return unicodedata.normalize("NFC", m.group(2) + mark)


def clean_dict_entry(dictname: str, raw: str) -> str:
    """Markup and boilerplate removed from one dictd entry, leaving English prose."""
    t = raw.replace("\r", "")
    if dictname == "gcide":
        t = _TAG_RE.sub("", t)
        t = _PRON_RE.sub("", t)
        t = re.sub(r"[ \t]+,", ",", t)  # "Word \\Pron\\, n." -> "Word, n."
        for k, v in _GCIDE_LIGATURES.items():
            t = t.replace(k, v)
        t = _GCIDE_CHAR_RE.sub(_gcide_char, t)
        t = _SRC_TAG_RE.sub("", t)
    elif dictname == "wn":
        t = _WN_XREF_RE.sub("", t)
    t = _BRACES_RE.sub("", t)
    return _reflow(t)


def _read_dictd(files: list[tuple[str, Path]]) -> Iterable[Document]:
    by_label = dict(files)
    for name in DICTD_NAMES:
        idx, dz = by_label.get(f"{name}.index"), by_label.get(f"{name}.dict.dz")
        if idx is None or dz is None:
            continue
        with gzip.open(dz, "rb") as f:
            data = f.read()
        counts: dict[str, int] = {}
        seen_offsets = set()
        for line in idx.read_text("utf-8", errors="replace").splitlines():
            parts = line.split("\t")
            if len(parts) < 3:
                continue
            head, off, length = parts[0], _b64(parts[1]), _b64(parts[2])
            if head.startswith("00-database") or head.startswith("00database"):
                continue
            if off in seen_offsets:  # several headwords pointing at one entry: keep the first
                continue
            seen_offsets.add(off)
            raw = data[off : off + length].decode("utf-8", errors="replace")
            text = clean_dict_entry(name, raw)
            if len(text) < 8:
                continue
            n = counts.get(head, 0) + 1
            counts[head] = n
            yield Document(f"text:{name}:{head}#{n}", text)


def _read_fortunes(files: list[tuple[str, Path]]) -> Iterable[Document]:
    for label, p in files:
        if not label.startswith("fortunes/"):
            continue
        name = label.split("/", 1)[1]
        raw = p.read_bytes().decode("utf-8", errors="replace")
        for n, entry in enumerate(re.split(r"^%[ \t]*$", raw, flags=re.M), 1):
            lines = [ln.rstrip() for ln in entry.strip("\n").splitlines()]
            text = "\n".join(lines).strip("\n")
            if len(text.strip()) >= 8:
                yield Document(f"text:fortunes:{name}#{n}", text + "\n")


def _read_text(files):
    yield from _read_dictd(files)
    yield from _read_fortunes(files)


def _plan_text() -> _Plan:
    files, missing = [], []
    pkg = {"gcide": "dict-gcide", "wn": "dict-wn", "jargon": "dict-jargon", "devil": "dict-devil"}
    for name in DICTD_NAMES:
        idx, dz = Path(DICTD_DIR) / f"{name}.index", Path(DICTD_DIR) / f"{name}.dict.dz"
        if idx.is_file() and dz.is_file():
            files += [(f"{name}.index", idx), (f"{name}.dict.dz", dz)]
        else:
            missing.append(pkg.get(name, name))
    fdir = Path(FORTUNE_DIR)
    fortunes = []
    if fdir.is_dir():
        for p in sorted(fdir.iterdir()):  # top level only: off/ (offensive) is skipped
            if p.is_file() and not p.is_symlink() and "." not in p.name:
                fortunes.append((f"fortunes/{p.name}", p))
    if not fortunes:
        missing.append("fortunes")
    if missing:
        raise CorpusError(
            f"corpus 'text': Debian text package(s) not installed: {', '.join(missing)} "
            f"(looked in {DICTD_DIR} and {FORTUNE_DIR}). Install with: {TEXT_PACKAGES_HINT}"
        )
    return _Plan(files + fortunes, _read_text, f"Debian dict-gcide, dict-wn, dict-jargon, dict-devil, fortunes ({DICTD_DIR}, {FORTUNE_DIR})")


# --- docs: man pages ----------------------------------------------------------------------------

_OVERSTRIKE_RE = re.compile(r".\x08")


def _render_man(p: Path) -> str | None:
    env = dict(os.environ, MANWIDTH="80", MAN_KEEP_FORMATTING="", MANPAGER="cat", PAGER="cat", LC_ALL="C.UTF-8")
    try:
        r = subprocess.run(["man", "-l", "-P", "cat", str(p)], capture_output=True, env=env, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if r.returncode != 0:
        return None
    text = _OVERSTRIKE_RE.sub("", r.stdout.decode("utf-8", errors="replace"))
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    return text.strip() + "\n" if text.strip() else None


def _read_man(files):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max(1, min(4, os.cpu_count() or 1))) as ex:
        for (label, _), text in zip(files, ex.map(lambda f: _render_man(f[1]), files)):
            if text and "\n" in text and not text.startswith(".so "):
                yield Document(f"docs:{label}", text)


def _plan_docs() -> _Plan:
    import shutil

    if shutil.which("man") is None or shutil.which("groff") is None:
        raise CorpusError("corpus 'docs': needs the `man` and `groff` programs: sudo apt-get install man-db groff-base")
    files = []
    for s in MAN_SECTIONS:
        d = Path(MAN_DIR) / f"man{s}"
        if d.is_dir():
            for p in sorted(d.iterdir()):
                if p.is_file() and not p.is_symlink():
                    files.append((f"man{s}/{p.name}", p))
    if not files:
        raise CorpusError(f"corpus 'docs': no manual pages in {MAN_DIR}/man{{1,5,7,8}}: install man pages (apt-get install manpages)")
    return _Plan(files, _read_man, f"manual pages of sections {', '.join(MAN_SECTIONS)} in {MAN_DIR}")


BUILTIN: dict[str, Callable[[], _Plan]] = {
    "python": lambda: _plan_python(False),
    "python-large": lambda: _plan_python(True),
    "code": _plan_code,
    "text": _plan_text,
    "docs": _plan_docs,
}


# ----------------------------------------------------------------------------------------------
# datasets-backed sources: hf:<dataset>[:<config>], files:<glob>

_TEXT_COLUMNS = ("text", "content", "code", "whole_func_string", "body", "document")


def _text_column(ds, source: str) -> str:
    for c in _TEXT_COLUMNS:
        if c in ds.column_names:
            return c
    for c, f in ds.features.items():
        if getattr(f, "dtype", None) in ("string", "large_string"):
            return c
    raise CorpusError(f"{source}: no text column (looked for {', '.join(_TEXT_COLUMNS)} or any string column)")


def _load_hf(name: str, home: Path | None):
    import datasets

    spec = name[len("hf:") :]
    if not spec:
        raise CorpusError("corpus 'hf:': give a dataset, e.g. hf:codeparrot/codeparrot-clean-valid")
    dataset, _, config = spec.partition(":")
    try:
        dd = datasets.load_dataset(dataset, config or None)
    except Exception as e:  # offline, unknown, gated, ...: all the same to the user
        raise CorpusError(
            f"corpus '{name}': cannot load Hugging Face dataset '{dataset}'"
            + (f" (config '{config}')" if config else "")
            + f": {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}. It needs a network "
            "connection the first time (or a local copy in the Hugging Face cache, ~/.cache/huggingface); "
            "for local files use files:<glob>."
        ) from e
    if isinstance(dd, datasets.Dataset):
        dd = datasets.DatasetDict({"train": dd})
    docs, sources = [], []
    for split, ds in dd.items():
        col = _text_column(ds, name)
        for i, text in enumerate(ds[col]):
            if isinstance(text, str):
                docs.append(Document(f"{name}:{split}/{i}", text))
        sources.append(Source(f"{dataset}:{split}", dataset, getattr(ds, "_fingerprint", "") or ""))
    return docs, sources, f"Hugging Face dataset {spec}"


def _glob_root(pattern: str) -> Path:
    parts = Path(pattern).parts
    root = []
    for p in parts:
        if _glob.has_magic(p):
            break
        root.append(p)
    r = Path(*root) if root else Path(".")
    return r if r.is_dir() else r.parent


def _glob_files(name: str) -> list[tuple[str, Path]]:
    pattern = os.path.expanduser(name[len("files:") :])
    if not pattern:
        raise CorpusError("corpus 'files:': give a glob, e.g. files:~/src/**/*.py")
    paths = sorted(Path(p) for p in _glob.glob(pattern, recursive=True) if Path(p).is_file())
    if not paths:
        raise CorpusError(f"corpus '{name}': the glob {pattern!r} matches no files. Check the path (use ** with quotes for recursion).")
    root = _glob_root(pattern)
    out = []
    for p in paths:
        try:
            label = p.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            label = p.name
        out.append((label, p))
    return out


_STRUCTURED = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet"}


def _load_files(name: str, files: list[tuple[str, Path]], home: Path | None):
    import datasets

    cache = str(_home(home) / "hf-datasets")
    docs = []
    kinds: dict[str, list[tuple[str, Path]]] = {}
    for label, p in files:
        kinds.setdefault(_STRUCTURED.get(p.suffix.lower(), "text"), []).append((label, p))
    for kind, group in kinds.items():
        paths = [str(p) for _, p in group]
        try:
            if kind == "text":
                # One file = one document: load each file on its own so rows map to files exactly.
                ds = datasets.load_dataset("text", data_files=paths, sample_by="document", split="train", cache_dir=cache, keep_linebreaks=True)
                texts = ds["text"]
                if len(texts) != len(group):  # empty files produce no row: fall back to reading them
                    texts = [p.read_text("utf-8", errors="replace") for _, p in group]
                docs += [Document(f"files:{label}", t) for (label, _), t in zip(group, texts)]
            else:
                for label, p in group:
                    ds = datasets.load_dataset(kind, data_files=[str(p)], split="train", cache_dir=cache)
                    col = _text_column(ds, name)
                    docs += [Document(f"files:{label}#{i}", t) for i, t in enumerate(ds[col]) if isinstance(t, str)]
        except CorpusError:
            raise
        except Exception as e:
            raise CorpusError(f"corpus '{name}': cannot read {kind} files with datasets: {type(e).__name__}: {e}") from e
    return docs


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


def _cache_dir(name: str, home: Path | None) -> Path:
    return _home(home) / "corpora" / safe_name(name)


def corpus_key(name: str, home: Path | None = None) -> str:
    """A cheap key that changes when the corpus's sources or settings change (no reading).

    For builtin corpora and files: it is a fingerprint of (path, size, mtime) of every source file;
    hf: datasets are loaded (from the datasets cache) and keyed by their fingerprints."""
    name = name.strip()
    if is_mixture(name):
        return sha256_text(json.dumps([name, [(corpus_key(c, home), w) for c, w in parse_mixture(name)]]))
    if name in BUILTIN:
        return _fingerprint(BUILTIN[name]().files, name)
    if name.startswith("files:"):
        return _fingerprint(_glob_files(name), name)
    if name.startswith("hf:"):
        return load_corpus(name, home).key
    raise CorpusError(_unknown(name))


def _unknown(name: str) -> str:
    return (
        f"unknown corpus '{name}'. Known: {', '.join(BUILTIN)}, hf:<dataset>[:<config>], files:<glob>, "
        "and mixtures such as text+code or text:0.3+code:0.7"
    )


def _save(c: Corpus, home: Path | None) -> None:
    d = _cache_dir(c.name, home)
    d.mkdir(parents=True, exist_ok=True)
    blob = "".join(doc.text for doc in c.documents).encode("utf-8", "surrogatepass")
    atomic_write_bytes(d / "docs.txt", blob)
    atomic_write_json(d / "index.json", {"ids": [x.id for x in c.documents], "lengths": [len(x.text) for x in c.documents]})
    m = c.manifest()
    m["cache"] = {"docs_sha256": hashlib.sha256(blob).hexdigest(), "index_sha256": sha256_file(d / "index.json")}
    atomic_write_json(d / "manifest.json", m)


def _load_cached(name: str, key: str, home: Path | None) -> Corpus | None:
    d = _cache_dir(name, home)
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
        raw, sources, origin = _load_hf(name, home)
        key = sha256_text(json.dumps([CLEAN_VERSION, SPLIT_SALT, name, [vars(s) for s in sources]]))
    else:
        if name.startswith("files:"):
            files = _glob_files(name)
            raw = _load_files(name, files, home)
            origin = f"local files {name[len('files:'):]} (read with datasets)"
        else:
            plan = BUILTIN[name]()
            files, origin = plan.files, plan.origin
            raw = list(plan.read(files))
        key = _fingerprint(files, name)
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
        return mix([(load_corpus(c, home), w) for c, w in comps], name)
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


# ----------------------------------------------------------------------------------------------
# CLI: python -m effdata.corpora [NAMES...]


def _fmt(n: float) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.2f}{unit}"
    return f"{n:.0f}"


def summary(name: str, home: Path | None = None, tokens: bool = True, vocab_size: int | None = None) -> str:
    t0 = time.time()
    c = load_corpus(name, home)
    t_load = time.time() - t0
    m = c.manifest()
    tc = None
    if tokens:
        from effdata import tokens as tk
        from effdata.tokenizer import DEFAULT_VOCAB_SIZE

        tc = tk.prepare(name, vocab_size or DEFAULT_VOCAB_SIZE, home)
    t_all = time.time() - t0
    lines = [f"== {name}   ({m['info'].get('origin', '')})"]
    tot_tok = sum(s.n_tokens for s in tc.splits.values()) if tc else None
    head = f"   documents {m['documents']:,}   characters {m['characters']:,} ({_fmt(m['characters'])})"
    if tc:
        head += f"   tokens {tot_tok:,} ({_fmt(tot_tok)})   chars/token {m['characters'] / max(tot_tok, 1):.3f}   (vocab {tc.vocab_size})"
    lines.append(head)
    for s in ("train", "valid", "test"):
        sm = m["splits"][s]
        row = f"   {s:<5}  documents {sm['documents']:>9,}   characters {sm['characters']:>13,}"
        if tc:
            row += f"   tokens {tc.splits[s].n_tokens:>12,}"
        lines.append(row)
    if "realised_weights" in m["info"]:
        lines.append("   realised character weights: " + ", ".join(f"{k} {v:.3f}" for k, v in m["info"]["realised_weights"].items()))
    dup = m["info"].get("duplicates_removed")
    lines.append(
        f"   sources: {len(c.sources):,} files; exact duplicates removed: {dup}; "
        f"corpus built in {m['info'].get('build_seconds', '-')} s (this call: load {t_load:.1f} s, total {t_all:.1f} s)"
    )
    where = "(mixture: built from its components' caches)" if is_mixture(name) else str(_cache_dir(name, home))
    lines.append(f"   cache: {where}" + (f"  tokens: {tc.splits['train'].path.parent}" if tc else ""))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m effdata.corpora", description="Build and summarise corpora.")
    ap.add_argument("names", nargs="*", help=f"corpora (default: {' '.join(DEFAULT_CORPORA)})")
    ap.add_argument("--home", type=Path, default=None, help="cache directory (default $EFFDATA_HOME or ~/.cache/effdata)")
    ap.add_argument("--no-tokens", action="store_true", help="do not tokenise (no token counts)")
    ap.add_argument("--vocab-size", type=int, default=None)
    a = ap.parse_args(argv)
    names = a.names or list(DEFAULT_CORPORA)
    try:
        check_sources(names, a.home)
        for n in names:
            print(summary(n, a.home, tokens=not a.no_tokens, vocab_size=a.vocab_size), flush=True)
    except CorpusError as e:
        print(f"effdata: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    # Run the imported module's main so that there is one CorpusError class (effdata.tokens imports it).
    from effdata.corpora import main as _main

    sys.exit(_main())
