"""Measurement (not a test): is v3's short warm-up, or its wsd schedule, what separates a v3 from-scratch
point from v2's at the same shape? Three stand-alone runs of one length, each kept at its end.

    python benchmarks/warmup_check.py --size w100k --data-chars 3e5 --steps 961 --out /tmp/warmup-check

* `wsd, 5 warm-up`: the run the v3 search kept (warm-up 20 % of its 25-step shortest length);
* `wsd, 5 %`: the same with v2's warm-up rule (5 % of the run's steps);
* `cosine, 5 %`: v2's schedule, run to its end (v2 early-stopped inside it; here the end is kept);
* `--decay-fracs`: wsd with the 5-step warm-up and longer decays.
Everything else is jobs/cpu-v3.toml's [train] (tuned LR, batch 16, eager).
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1])]

from effdata.spec import RunSpec  # noqa: E402
from effdata.study.rundata import run_data  # noqa: E402
from effdata.study.study import load_study  # noqa: E402
from effdata.training.train import train_run  # noqa: E402

JOBS = Path(__file__).resolve().parents[1] / "jobs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="w100k")
    parser.add_argument("--data-chars", type=float, default=3e5)
    parser.add_argument("--steps", type=int, default=961)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--decay-fracs", nargs="*", type=float, default=[],
                        help="also wsd with the 5-step warm-up and these decay fractions (v3: 0.2)")
    parser.add_argument("--only-decay", action="store_true", help="run only the --decay-fracs variants")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    v3 = dataclasses.replace(load_study(JOBS / "cpu-v3.toml").train, length_search="off", min_steps=args.steps,
                             max_steps=args.steps, evals_per_run=1)
    short = round(v3.warmup_frac * 25)   # the search's warm-up: warmup_frac of its shortest length (min_steps 25)
    variants = {"wsd, 5 warm-up": dataclasses.replace(v3, warmup_max=short),
                "wsd, 5 %": dataclasses.replace(v3, warmup_frac=0.05),
                "cosine, 5 %": dataclasses.replace(v3, schedule="cosine", warmup_frac=0.05)}
    extra = {f"wsd, 5 warm-up, decay {f:g}": dataclasses.replace(v3, warmup_max=short, decay_frac=f)
             for f in args.decay_fracs}
    variants = extra if args.only_decay else {**variants, **extra}
    print("| schedule | warm-up steps | test loss | valid loss | seconds |\n|---|---|---|---|---|")
    for name, settings in variants.items():
        spec = RunSpec("scratch", args.size, 0, "python", data_chars=int(args.data_chars), settings=settings)
        m = train_run(spec, run_data(spec), args.out / name.replace(", ", "-").replace(" ", ""), threads=args.threads)
        print(f"| {name} | {m['warmup_steps']} | {m['loss']:.4f} | {m['valid_loss']:.4f} | {m['wall_time']:.0f} |",
              flush=True)


if __name__ == "__main__":
    main()
