"""What travels to a GPU machine and what comes back: `python -m effdata.gpu pack|unpack|collect`.

    python -m effdata.gpu pack --study jobs/gpu-h200.toml --pretrain text   # here: .gpu-carry/ (git-ignored)
    python -m effdata.gpu unpack --home $EFFDATA_HOME                       # there: a home without sources
    python -m effdata.gpu collect --work DIR --out $OUT                     # there: at most 8 files back

A GPU machine lent for a few minutes has none of the corpora's sources (Debian's text packages, this
interpreter's standard library), cannot download, takes at most 64 MiB of working tree with the code and
returns at most 8 files of at most 16 MiB (docs/notes/issue-21.md). So `pack` prepares the study's token
files here and puts the tokenizer and token files, with the corpus keys they were built under
(`effdata.data.corpora.PINNED_KEYS`), into one compressed archive; `unpack` puts them into a fresh home
and checks that every corpus loads from it without its sources; `collect` packs a study's records, its
results table and the logs into a few files. `benchmarks/gpu_run.sh` calls all three.
"""
from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
import tarfile
from dataclasses import asdict, dataclass
from pathlib import Path

from effdata.data.corpora import PINNED_KEYS, CorpusError, corpus_key, is_mixture, parse_mixture
from effdata.data.tokenizer import DEFAULT_VOCAB_SIZE, SAMPLE_CORPORA
from effdata.data.tokens import DataError, TokenizedCorpus, prepare
from effdata.paths import atomic_write_json, home as _home, sha256_file
from effdata.study.study import StudyError, load_study

ARCHIVE = "home.tar.xz"
MANIFEST = "manifest.json"
# 64 MiB travel with the code (the device tool's limit). xz, not gzip: the V = 2,048 python and text token
# files (54 MB) are 16.9 MB with xz -6 in 45 s here (`bash benchmarks/gpu_pack.sh`), 28.1 MB gzipped in 4 s; the committed analyses grew the
# tracked tree from 9.6 MB to 35 MB (5 December), and 35 + 28.1 MB left 4 MB of the 67.1; xz leaves 15.
# Decompressing takes a second or two on the device. The archive may still take 48 MiB when the tree is small.
MAX_ARCHIVE_MIB = 48.0
# What comes back (the device tool's limit): at most 8 files, each at most 16 MiB.
MAX_FILES, MAX_FILE_BYTES = 8, 16 * 2**20
RECORD_FILES = ("run.json", "record.json", "log.txt", "error.txt")


class CarryError(RuntimeError):
    """What travels cannot be made, unpacked or collected; the message says what to do."""


@dataclass(frozen=True)
class Manifest:
    """What an archive holds: each corpus's token directory and the tokenizer, relative to the home."""

    study: str
    vocab_size: int
    tokenizer_corpora: list[str] | None
    corpora: dict[str, str]          # corpus name -> tokens/<dir>
    tokenizer: str                   # tokenizer/<dir>
    pinned: dict[str, str]           # corpus name -> key (every corpus the keys above were computed from)
    archive_bytes: int = 0
    archive_sha256: str = ""


# ----------------------------------------------------------------------------------------------
# pack (here)

def _key_names(names: list[str]) -> list[str]:
    """Every corpus name a key is computed from: mixtures and their components."""
    out: list[str] = []
    for name in names:
        out.append(name)
        if is_mixture(name):
            out += [component for component, _ in parse_mixture(name)]
    return list(dict.fromkeys(out))


def pack(study_file: Path, pretrains: list[str] | None, home: Path | None, carry: Path,
         max_mib: float = MAX_ARCHIVE_MIB) -> Manifest:
    """Prepare the study's corpora in `home` (building what is missing) and write `carry`/home.tar.xz and
    `carry`/manifest.json. CarryError when the archive is larger than `max_mib`."""
    study = load_study(study_file)
    vocab = study.vocab_size or DEFAULT_VOCAB_SIZE
    names = list(dict.fromkeys([study.target, *(pretrains or study.pretrain.corpora)]))
    tokenized = {name: prepare(name, vocab, home, tokenizer_corpora=study.tokenizer_corpora) for name in names}
    root = _home(home)
    tokenizer_dir = next(iter(tokenized.values())).tokenizer_dir
    sample = list(study.tokenizer_corpora or SAMPLE_CORPORA)
    pinned = {name: corpus_key(name, home) for name in _key_names(names + sample)}
    manifest = Manifest(study=str(study_file), vocab_size=vocab, tokenizer_corpora=study.tokenizer_corpora,
                        corpora={n: str(_token_dir(tc).relative_to(root)) for n, tc in tokenized.items()},
                        tokenizer=str(tokenizer_dir.relative_to(root)), pinned=pinned)
    carry.mkdir(parents=True, exist_ok=True)
    archive = carry / ARCHIVE
    with tarfile.open(archive, "w:xz", preset=6) as tar:
        for rel in [manifest.tokenizer, *manifest.corpora.values()]:
            tar.add(root / rel, arcname=rel, filter=lambda info: None if info.name.endswith(".in-use") else info)
        keys = json.dumps(pinned, indent=2, sort_keys=True).encode()
        info = tarfile.TarInfo(PINNED_KEYS)
        info.size = len(keys)
        tar.addfile(info, io.BytesIO(keys))
    size = archive.stat().st_size
    if size > max_mib * 2**20:
        archive.unlink()
        raise CarryError(f"the archive of {', '.join(names)} is {size / 2**20:.1f} MiB, more than the {max_mib:g} MiB "
                         f"that may travel beside the code; use a smaller vocabulary or pretraining corpus")
    manifest = Manifest(**{**asdict(manifest), "archive_bytes": size, "archive_sha256": sha256_file(archive)})
    atomic_write_json(carry / MANIFEST, asdict(manifest))
    return manifest


def _token_dir(tc: TokenizedCorpus) -> Path:
    return tc.splits["train"].path.parent


# ----------------------------------------------------------------------------------------------
# unpack (there)

def read_manifest(carry: Path) -> Manifest:
    try:
        return Manifest(**json.loads((carry / MANIFEST).read_text()))
    except (OSError, ValueError, TypeError) as exc:
        raise CarryError(f"{carry / MANIFEST} is missing or unreadable ({exc}); run "
                         f"`python -m effdata.gpu pack` (benchmarks/gpu_pack.sh) where the corpora are") from None


def unpack(carry: Path, home: Path | None) -> dict[str, TokenizedCorpus]:
    """Extract the archive into `home` and load every corpus it holds from there (token files checked
    against their sha256); CarryError if the archive or a corpus does not match its manifest."""
    manifest = read_manifest(carry)
    archive = carry / ARCHIVE
    if not archive.exists() or sha256_file(archive) != manifest.archive_sha256:
        raise CarryError(f"{archive} is missing or not the archive {carry / MANIFEST} describes; pack again")
    root = _home(home)
    with tarfile.open(archive, "r:xz") as tar:
        tar.extractall(root, filter="data")
    loaded = {}
    for name, rel in manifest.corpora.items():
        try:
            tc = prepare(name, manifest.vocab_size, home, tokenizer_corpora=manifest.tokenizer_corpora)
        except (CorpusError, DataError, OSError) as exc:
            raise CarryError(f"corpus {name} does not load from the unpacked home ({exc})") from None
        if _token_dir(tc) != root / rel:
            raise CarryError(f"corpus {name} loaded from {_token_dir(tc)}, not the carried {root / rel}")
        loaded[name] = tc
    return loaded


# ----------------------------------------------------------------------------------------------
# collect (there, also after a failure)

def collect(work: Path, out: Path, home: Path | None = None) -> list[str]:
    """Into `out`: records.tar.gz (every run's plan, record, log and error, the study's identity, this
    machine's measured step times), results.csv (regenerated from the records), and whatever of bench.md,
    the bench's JSON files and env.txt `work` holds: 7 files at most, log.txt (the script's) the 8th. Returns
    one line per file written. Works on a study that stopped part-way: a run's record is written when it ends."""
    out.mkdir(parents=True, exist_ok=True)
    study = work / "study"
    lines = [_records_archive(study, _home(home), out)]
    if (study / "runs").is_dir():
        from effdata.study.store import Store  # noqa: PLC0415

        table = Store(study).write_table()
        shutil.copyfile(table, out / "results.csv")
        lines.append(f"results.csv {_kib(out / 'results.csv')} ({_rows(table)} rows)")
    for name in ("bench.md", "bench.json", "bench-workers.json", "bench-pretrain.json", "env.txt"):
        if (work / name).is_file():
            shutil.copyfile(work / name, out / name)
            lines.append(f"{name} {_kib(out / name)}")
    files = [p for p in out.iterdir() if p.is_file()]
    big = [p.name for p in files if p.stat().st_size > MAX_FILE_BYTES]
    if len(files) > MAX_FILES - 1 or big:  # one place is kept for the script's log.txt
        raise CarryError(f"{out} holds {len(files)} files ({', '.join(big) or 'none'} over 16 MiB); at most "
                         f"{MAX_FILES - 1} besides log.txt come back")
    return lines


def _records_archive(study: Path, home: Path, out: Path) -> str:
    """records.tar.gz; without the runs' logs if it would be over 16 MiB with them."""
    for with_logs in (True, False):
        archive = out / "records.tar.gz"
        counts = {"ok": 0, "failed": 0, "unfinished": 0}
        with tarfile.open(archive, "w:gz") as tar:
            for path in (study / "study.json", home / "bench" / "step_times.json"):
                if path.is_file():
                    tar.add(path, arcname=path.name)
            for run_dir in sorted((study / "runs").glob("*")) if (study / "runs").is_dir() else []:
                for name in RECORD_FILES:
                    if (run_dir / name).is_file() and (with_logs or name != "log.txt"):
                        tar.add(run_dir / name, arcname=f"runs/{run_dir.name}/{name}")
                counts[_status(run_dir)] += 1
        if archive.stat().st_size <= MAX_FILE_BYTES:
            break
    summary = ", ".join(f"{n} {k}" for k, n in counts.items())
    return f"records.tar.gz {_kib(archive)} ({summary}{'' if with_logs else '; run logs left out for size'})"


def _status(run_dir: Path) -> str:
    try:
        return json.loads((run_dir / "record.json").read_text())["status"]
    except (OSError, ValueError, KeyError):
        return "unfinished"


def _kib(path: Path) -> str:
    return f"{path.stat().st_size / 1024:,.0f} KiB"


def _rows(table: Path) -> int:
    return max(0, sum(1 for _ in table.open()) - 1)


# ----------------------------------------------------------------------------------------------
# The command line

def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m effdata.gpu", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    pk = sub.add_parser("pack", help="prepare the study's corpora here and write the carried archive")
    pk.add_argument("--study", type=Path, required=True)
    pk.add_argument("--pretrain", nargs="+", help="pretraining corpora (default: the study's)")
    pk.add_argument("--max-mib", type=float, default=MAX_ARCHIVE_MIB)
    up = sub.add_parser("unpack", help="extract the archive into a home and load every corpus from it")
    co = sub.add_parser("collect", help="pack a study's records, results table and logs into --out")
    co.add_argument("--work", type=Path, required=True, help="the run's work directory (study/, bench.md, ...)")
    co.add_argument("--out", type=Path, required=True)
    for q in (pk, up):
        q.add_argument("--carry", type=Path, default=Path(".gpu-carry"), help="default: %(default)s")
    for q in (pk, up, co):
        q.add_argument("--home", type=Path, help="default: $EFFDATA_HOME or ~/.cache/effdata")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "pack":
            m = pack(args.study, args.pretrain, args.home, args.carry, args.max_mib)
            print(f"{args.carry / ARCHIVE}: {m.archive_bytes / 2**20:.1f} MiB ({', '.join(m.corpora)}, vocabulary "
                  f"{m.vocab_size}); name {args.carry} in the device tool's carry")
        elif args.command == "unpack":
            for name, tc in unpack(args.carry, args.home).items():
                print(f"{name}: {tc.splits['train'].n_tokens:,} train tokens, loaded from {_token_dir(tc)}")
        else:
            print("\n".join(collect(args.work, args.out, args.home)))
    except (CarryError, StudyError, CorpusError, DataError) as exc:
        print(f"effdata.gpu: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
