"""`python -m effdata.corpora [NAMES...]`: build the named corpora (default: the study defaults) and
summarise them: documents, characters, tokens per split, duplicates removed, where the cache is.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from effdata.data.corpora import DEFAULT_CORPORA, CorpusError, cache_dir, check_sources, is_mixture, load_corpus
from effdata.data.tokenizer import DEFAULT_VOCAB_SIZE
from effdata.data.tokens import prepare
from effdata.fmt import si
from effdata.study.progress import preparation_shown
from effdata.study.runner import quiet_libraries




def summary(name: str, home: Path | None = None, tokens: bool = True, vocab_size: int | None = None) -> str:
    t0 = time.time()
    c = load_corpus(name, home)
    t_load = time.time() - t0
    m = c.manifest()
    tc = None
    if tokens:
        tc = prepare(name, vocab_size or DEFAULT_VOCAB_SIZE, home)
    t_all = time.time() - t0
    lines = [f"== {name}   ({m['info'].get('origin', '')})"]
    tot_tok = sum(s.n_tokens for s in tc.splits.values()) if tc else None
    head = f"   documents {m['documents']:,}   characters {m['characters']:,} ({si(m['characters'])})"
    if tc:
        head += f"   tokens {tot_tok:,} ({si(tot_tok)})   chars/token {m['characters'] / max(tot_tok, 1):.3f}   (vocab {tc.vocab_size})"
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
    where = "(mixture: built from its components' caches)" if is_mixture(name) else str(cache_dir(name, home))
    lines.append(f"   cache: {where}" + (f"  tokens: {tc.splits['train'].path.parent}" if tc else ""))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m effdata.corpora", description="Build and summarise corpora.")
    ap.add_argument("names", nargs="*", help=f"corpora (default: {' '.join(DEFAULT_CORPORA)})")
    ap.add_argument("--home", type=Path, default=None, help="cache directory (default $EFFDATA_HOME or ~/.cache/effdata)")
    ap.add_argument("--no-tokens", action="store_true", help="do not tokenise (no token counts)")
    ap.add_argument("--vocab-size", type=int, default=None)
    a = ap.parse_args(argv)
    names = a.names or list(DEFAULT_CORPORA)
    # datasets' own bars ("Downloading data" for files on this disk, "Generating train split") would interleave with
    # the lines below; effdata.run quietens them the same way. Seen when tests/test_progress.py's corpora test ran
    # first in its process: until then another test had always quietened them for it.
    quiet_libraries()
    try:
        check_sources(names, a.home)
        with preparation_shown(len(names)) as shown:  # what is built, while it is (minutes on an empty cache)
            for index, n in enumerate(names, 1):
                shown.corpus = (index, n)
                print(summary(n, a.home, tokens=not a.no_tokens, vocab_size=a.vocab_size), flush=True)
    except CorpusError as e:
        print(f"effdata: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
