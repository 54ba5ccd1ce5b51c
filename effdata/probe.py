"""Probe every pretrained checkpoint of a study: its induction score and its loss by context position.

    python -m effdata.probe RUNS [--out probe.csv] [--figure probe.png] [--windows 256] [--sequences 64] [--home H]

RUNS is a study directory (`python -m effdata.run --out RUNS`). For each pretraining run that ended, its own
checkpoint and each mid-run checkpoint (`[pretrain] checkpoint_tokens_per_param`, `checkpoint_tokens`) are
loaded with `from_pretrained` and probed on the study's target (`effdata.training.probe`): a row per checkpoint
with the tokens it was trained on, the zero-shot target loss its run recorded (`valid_loss`), the induction
score (`induction`: loss on random tokens minus on their copy) and the loss at early and late context
positions (`in_context`: late minus early). The figure draws the scores, the induction score's order part and the
zero-shot loss against the tokens, a line per size and pretraining corpus (and seed). Written at the end,
atomically: a run that dies writes nothing.
"""
from __future__ import annotations

import argparse
import math
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from effdata.paths import atomic_write, atomic_write_text
from effdata.spec import FINAL_CHECKPOINT, RunSpec, get_shape
from effdata.study.store import Store


class ProbeError(ValueError):
    """Nothing to probe, or a checkpoint that is not on disk."""


def checkpoints(store: Store) -> list[dict[str, Any]]:
    """Each ended pretraining run's checkpoints, shortest first: what the run recorded of each (its tokens and
    zero-shot target loss) and where it lies."""
    out = []
    for record in store.records():
        if record["status"] != "ok" or record["spec"]["mode"] != "pretrain":
            continue
        m, spec = record["metrics"], RunSpec.from_dict(record["spec"])
        own = {"name": FINAL_CHECKPOINT, "tokens_seen": m["tokens_seen"], "valid_loss": m["valid_loss"],
               "pretrain_valid_loss": m.get("pretrain_valid_loss")}
        for c in [*m.get("checkpoints", []), own]:
            path = store.checkpoint_dir(record["run_id"], c["name"])
            if not (path / "config.json").exists():
                raise ProbeError(f"{path}: no checkpoint there (its run's record names it)")
            out.append({"run_id": record["run_id"], "spec": spec, "path": path, "checkpoint": c["name"],
                        "tokens": int(c["tokens_seen"]), "valid_loss": c["valid_loss"],
                        "pretrain_valid_loss": c.get("pretrain_valid_loss")})
    if not out:
        raise ProbeError(f"{store.out_dir}: no ended pretraining run with a checkpoint under {store.runs_dir}")
    order = lambda c: (c["spec"].corpus, get_shape(c["spec"].size).n_params, c["spec"].seed, c["tokens"])  # noqa: E731
    return sorted(out, key=order)


def probe_rows(found: list[dict[str, Any]], windows: int, sequences: int,
               home: Path | None = None) -> list[dict[str, Any]]:
    """Load and probe each checkpoint (torch from here on), a line of progress each on stderr."""
    import transformers  # noqa: PLC0415 (listing the checkpoints needs no torch)

    from effdata.data.tokens import prepare  # noqa: PLC0415
    from effdata.training.probe import probe  # noqa: PLC0415

    rows, held_out = [], {}
    for i, c in enumerate(found, 1):
        spec: RunSpec = c["spec"]
        key = (spec.target, spec.vocab_size, spec.tokenizer_corpora)
        if key not in held_out:
            held_out[key] = prepare(spec.target, spec.vocab_size, home,
                                    tokenizer_corpora=spec.tokenizer_corpora).splits["valid"].array()
        model = transformers.AutoModelForCausalLM.from_pretrained(c["path"])
        p = probe(model, held_out[key], n_windows=windows, n_seq=sequences)
        n = get_shape(spec.size).n_params
        rows.append({"run_id": c["run_id"], "corpus": spec.corpus, "size": spec.size, "n_params": n,
                     "seed": spec.seed, "checkpoint": c["checkpoint"], "tokens": c["tokens"],
                     "tokens_per_param": c["tokens"] / n, "valid_loss": c["valid_loss"],
                     "pretrain_valid_loss": c["pretrain_valid_loss"], **asdict(p),
                     "induction": p.induction, "copy_gain": p.copy_gain, "order_gain": p.order_gain,
                     "in_context": p.in_context})
        print(f"probe {i}/{len(found)}: {spec.corpus} {spec.size} {c['checkpoint']} ({c['tokens']:,} tokens): "
              f"induction {p.induction:+.2f}, in-context {p.in_context:+.2f} nats", file=sys.stderr, flush=True)
    return rows


def draw(table, path: Path) -> None:
    """Induction score, its order part, in-context score and zero-shot target loss against tokens, a line per size
    and corpus, one per seed (dashes) where there are several: two seeds averaged would hide that they differ."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415
    import seaborn as sns  # noqa: PLC0415
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: PLC0415

    table = table.assign(line=table["corpus"] + " " + table["size"])
    seeds = {"style": "seed"} if table["seed"].nunique() > 1 else {}
    decades = math.log10(table["tokens"].max() / table["tokens"].min())
    fig, axes = plt.subplots(1, 4, figsize=(19, 4.2))
    panels = [("induction", "induction score (nats)", "random tokens: loss on the first copy − on the second"),
              ("order_gain", "order part (nats)", "random tokens: loss on a shuffled copy − on the exact copy"),
              ("in_context", "in-context score (nats)", "held-out target: loss at late − early context positions"),
              ("valid_loss", "zero-shot target loss (nats)", "held-out target, as the run recorded it")]
    for ax, (column, label, title) in zip(axes, panels):
        sns.lineplot(data=table, x="tokens", y=column, hue="line", marker="o", ax=ax, legend=ax is axes[0],
                     errorbar=None, **seeds)
        ax.set(xscale="log", xlabel="pretraining tokens", ylabel=label)
        ax.set_title(title, fontsize=9)
        # ticks labelled 2M, 5M, 10M (matplotlib's own overlap within a decade): at 1, 2 and 5 of each decade
        # over up to two decades, at each power of ten beyond
        ax.xaxis.set_major_locator(LogLocator(subs=(1, 2, 5) if decades < 2 else (1,)))
        ax.xaxis.set_major_formatter(FuncFormatter(_tokens_label))
        ax.xaxis.set_minor_formatter(NullFormatter())
    # upper left: every score there is near zero before the heads form (left) and the lines rise only to the right
    sns.move_legend(axes[0], "upper left", fontsize=8, title_fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)


def _tokens_label(x: float, _pos=None) -> str:
    """2000000 -> '2M', 500000 -> '500k'."""
    return f"{x / 1e6:g}M" if x >= 1e6 else f"{x / 1e3:g}k" if x >= 1e3 else f"{x:g}"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m effdata.probe", description=__doc__.split("\n\n")[0])
    p.add_argument("runs", type=Path, help="a study directory (python -m effdata.run --out RUNS)")
    p.add_argument("--out", type=Path, default=None, help="the table (default RUNS/probe.csv)")
    p.add_argument("--figure", type=Path, default=None, help="also draw the probes against tokens here (PNG)")
    p.add_argument("--windows", type=int, default=256, help="held-out windows for the loss by position")
    p.add_argument("--sequences", type=int, default=64, help="random sequences for the induction score")
    p.add_argument("--home", type=Path, default=None, help="the data cache the study used (as effdata.run --home)")
    return p


def main(argv: list[str] | None = None) -> int:
    a = _parser().parse_args(argv)
    try:
        if a.windows < 1 or a.sequences < 1:
            raise ProbeError("--windows and --sequences must be at least 1")
        found = checkpoints(Store(a.runs))
        import pandas as pd  # noqa: PLC0415

        table = pd.DataFrame(probe_rows(found, a.windows, a.sequences, a.home))
    except (ProbeError, ValueError) as exc:
        print(f"effdata.probe: error: {exc}", file=sys.stderr)
        return 2
    out = a.out or a.runs / "probe.csv"
    atomic_write_text(out, table.to_csv(index=False, float_format="%.6g"))
    if a.figure:
        draw(table, a.figure)
    print(f"{len(table)} checkpoints probed: {out}" + (f", {a.figure}" if a.figure else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
