"""The results store of one study directory: run plans, records, the results table.

    <out>/study.json                  the study's identity (a different study in the same out is refused)
    <out>/runs/<run_id>/run.json      the run as planned (`StudyRun.to_dict()`): what a worker executes
    <out>/runs/<run_id>/record.json   written atomically when the run ends (ok or failed)
    <out>/results.csv                 one row per record (and per mid-run checkpoint), regenerated from the records
    <out>/curves.csv                  one row per evaluation of every ok run (its learning curve), beside it

A run is done when its record exists, parses, and belongs to its id. Anything else (no record, a
half-written or foreign record, a failed record) is run again.
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from effdata.paths import atomic_write_json, atomic_write_text
from effdata.spec import FINAL_CHECKPOINT, SpecError, StudyRun, checkpoint_tag, identity_hash, pretrain_name
from effdata.study.study import Study, StudyError
from effdata.training.curve import CURVE_KEYS

RECORD = "record.json"
RUN = "run.json"


@dataclass(frozen=True)
class Store:
    out_dir: Path

    @property
    def runs_dir(self) -> Path:
        return self.out_dir / "runs"

    def run_dir(self, run_id: str) -> Path:
        return self.runs_dir / run_id

    def checkpoint_dir(self, run_id: str, name: str | None = None) -> Path:
        """A pretraining run's own checkpoint, or the mid-run one called `name` (spec.checkpoint_name)."""
        return self.run_dir(run_id) / (name or FINAL_CHECKPOINT)

    @property
    def results_path(self) -> Path:
        return self.out_dir / "results.csv"

    @property
    def curves_path(self) -> Path:
        return self.out_dir / "curves.csv"

    def claim(self, study: Study) -> None:
        """Refuse an output directory that holds a different study; record ours otherwise."""
        path = self.out_dir / "study.json"
        identity = json.loads(json.dumps(study.identity(), sort_keys=True, default=list))
        if path.exists():
            try:
                held = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                held = None
            if held != identity:
                raise StudyError(
                    f"{self.out_dir} holds a different study (its study.json differs in name, target, "
                    f"vocab_size or [train] settings); nothing was changed. Use another --out, or move "
                    f"that directory away.\n  held: {held}\n  this: {identity}")
            return
        if self.runs_dir.exists() and any(self.runs_dir.iterdir()):
            raise StudyError(f"{self.out_dir} holds runs but no study.json: not an effdata study directory "
                             f"this command can take over; use another --out")
        atomic_write_json(path, identity)

    def write_run(self, run: StudyRun) -> None:
        path = self.run_dir(run.run_id) / RUN
        planned = run.to_dict()
        if not path.exists() or json.loads(path.read_text()) != planned:
            atomic_write_json(path, planned)

    def read_run(self, run_id: str) -> StudyRun:
        run = StudyRun.from_dict(json.loads((self.run_dir(run_id) / RUN).read_text()))
        if run.run_id != run_id:
            raise SpecError(f"{self.run_dir(run_id) / RUN} describes run {run.run_id}, not {run_id}")
        return run

    def read_record(self, run_id: str) -> dict[str, Any] | None:
        """The run's record if it is whole and belongs to this run id, else None.

        A record holds `identity` (what the id hashes), `run` (the StudyRun as planned) and `spec` (the
        RunSpec the worker trained, its checkpoint path resolved). Records written before the run
        contract was typed hold only `spec` = the identity; they still count (`_upgrade_legacy`)."""
        try:
            record = json.loads((self.run_dir(run_id) / RECORD).read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            return None
        if not isinstance(record, dict) or record.get("run_id") != run_id:
            return None
        if "identity" not in record and isinstance(record.get("spec"), dict):
            record = _upgrade_legacy(record)
        if record.get("status") not in ("ok", "failed") or not isinstance(record.get("identity"), dict):
            return None
        if identity_hash(record["identity"]) != run_id.rsplit("-", 1)[-1]:
            return None
        if record["status"] == "ok" and not isinstance(record.get("metrics"), dict):
            return None
        return record

    def is_done(self, run_id: str) -> bool:
        record = self.read_record(run_id)
        return record is not None and record["status"] == "ok"

    def adopt(self, source: Path, runs: Iterable[StudyRun]) -> list[str]:
        """Copy in the runs of `runs` that another study directory (`--reuse`) finished and this one has not. A run
        id is a hash of the run's identity, so a run of the same id there is this study's run: a check of one
        setting reuses the reference study's other runs (jobs/cpu-ft-lr-*.toml, jobs/cpu-large-d.toml). Copied
        beside runs/ first and renamed in, so that an interrupted copy is never taken for a run."""
        other = Store(Path(source))
        adopted = []
        for run in runs:
            if self.is_done(run.run_id) or not other.is_done(run.run_id):
                continue
            staging = self.out_dir / ".adopting" / run.run_id
            shutil.rmtree(staging, ignore_errors=True)
            shutil.copytree(other.run_dir(run.run_id), staging)
            shutil.rmtree(self.run_dir(run.run_id), ignore_errors=True)   # a failed or unfinished attempt here
            self.runs_dir.mkdir(parents=True, exist_ok=True)
            staging.rename(self.run_dir(run.run_id))
            adopted.append(run.run_id)
        shutil.rmtree(self.out_dir / ".adopting", ignore_errors=True)
        return adopted

    def write_record(self, run: StudyRun, status: str, metrics: dict | None = None, error: str | None = None,
                     spec: dict | None = None) -> None:
        atomic_write_json(self.run_dir(run.run_id) / RECORD, {
            "run_id": run.run_id, "status": status, "error": error, "identity": run.identity(),
            "run": run.to_dict(), "spec": spec or run.spec.to_dict(), "pretrain": run.pretrain,
            "depends_on": list(run.depends_on), "metrics": metrics or {},
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        })

    def planned(self) -> Iterator[StudyRun]:
        """Every run planned in this directory (its run.json), skipping a file that cannot be read."""
        if not self.runs_dir.exists():
            return
        for run_dir in sorted(self.runs_dir.iterdir()):
            try:
                yield self.read_run(run_dir.name)
            except (OSError, ValueError, KeyError, TypeError):   # JSONDecodeError and SpecError are ValueErrors
                continue

    def rival_loss(self, run: StudyRun):
        """For a [sweep] point: a function giving the best held-out loss (`valid_loss`) of its siblings that have
        finished (ok, and not stopped by forecast themselves), or None while none has; None for a run that is not
        a sweep point. The siblings are found once; their records are read at each call (they finish meanwhile)."""
        group = run.sweep_group()
        if group is None:
            return None
        siblings = [r.run_id for r in self.planned() if r.run_id != run.run_id and r.sweep_group() == group]

        def best() -> float | None:
            losses = [m["valid_loss"] for m in (self._ok_metrics(s) for s in siblings)
                      if m and m.get("stop_reason") != "forecast" and m.get("valid_loss") is not None]
            return min(losses, default=None)
        return best

    def _ok_metrics(self, run_id: str) -> dict[str, Any] | None:
        record = self.read_record(run_id)
        return record["metrics"] if record is not None and record["status"] == "ok" else None

    def records(self) -> Iterator[dict[str, Any]]:
        if not self.runs_dir.exists():
            return
        for run_dir in sorted(self.runs_dir.iterdir()):
            record = self.read_record(run_dir.name)
            if record is not None:
                yield record

    def write_table(self) -> Path:
        """Regenerate results.csv from every record (the analyzer's input): a row per run, and a pretraining
        row per mid-run checkpoint (`_checkpoint_rows`), named as the fine-tunes of it name their pretraining."""
        import pandas as pd  # noqa: PLC0415

        records = list(self.records())
        ok = {r["run_id"]: r["metrics"] for r in records if r["status"] == "ok"}
        rows = []
        for r in records:
            identity, metrics = r["identity"], r["metrics"]
            row = {"run_id": r["run_id"], "status": r["status"], "error": r["error"] or "",
                   "mode": identity["mode"], "pretrain": r["pretrain"], "size": identity["size"],
                   "seed": identity["seed"]}
            row.update({k: v for k, v in metrics.items() if not isinstance(v, (list, dict))})
            row["pretrain"] = r["pretrain"]  # the table's meaning, whatever the metrics call it
            row.update(_swept_values(r))
            row["tokens_per_param"] = _tokens_per_param(metrics)
            row["best_is_first"] = _best_is_first(identity["mode"], metrics)
            started = [_started_from(ok.get(dep, {}), r) for dep in r["depends_on"]]
            row["pretrain_flops"] = sum(m.get("flops", 0.0) for m in started)
            row["pretrain_tokens_per_param"] = sum(_tokens_per_param(m) or 0.0 for m in started) or None
            rows.append(row)
            rows += _checkpoint_rows(r, row)
        table = pd.DataFrame(rows)
        self.results_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.results_path, table.to_csv(index=False))
        curves = curve_rows(records)
        if curves:   # records from before curves were kept and with no `evals` either: no table at all
            atomic_write_text(self.curves_path, pd.DataFrame(curves, columns=["run_id", *CURVE_KEYS,
                                                                              *_extra_keys(curves)]).to_csv(index=False))
        return self.results_path


def curve_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every ok run's learning curve, a row per evaluation: the record's `curve`, or for a record written before
    curves were kept, its `evals` ([step, held-out loss]; tokens from the run's tokens per step, no LR or
    training loss)."""
    rows = []
    for r in records:
        metrics = r["metrics"]
        if r["status"] != "ok":
            continue
        if metrics.get("curve"):
            rows += [{"run_id": r["run_id"], **point} for point in metrics["curve"]]
            continue
        per_step = metrics["tokens_seen"] / metrics["steps"] if metrics.get("steps") else None
        rows += [{"run_id": r["run_id"], "step": step, "tokens": step * per_step if per_step else None,
                  "valid_loss": loss} for step, loss in metrics.get("evals", [])]
    return rows


def _extra_keys(rows: list[dict[str, Any]]) -> list[str]:
    """Columns a training option added to the curve (the gradient noise scale), in first-seen order."""
    keys: dict[str, None] = {}
    for row in rows:
        keys.update({k: None for k in row if k != "run_id" and k not in CURVE_KEYS})
    return list(keys)


def _best_is_first(mode: str, metrics: dict[str, Any]) -> bool | None:
    """A length search that kept the shortest length it tried (`min_steps`), or its starting model (step 0,
    a fine-tune no length improved on): the best run may lie between, so its loss is an upper bound like a
    capped run's (docs/METHOD.md §5e). None for a run that did not search (pretraining never does)."""
    if mode == "pretrain" or metrics.get("length_search") != "branches":
        return None
    lengths = [at for at, _ in metrics.get("evals", [])[1:]]   # [0, initial loss] first
    return bool(lengths) and metrics.get("best_step", 0) <= lengths[0]


def _started_from(metrics: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """Of a dependency's metrics, those of the checkpoint the run started from: the run's own, or the
    mid-run checkpoint its plan names (`init_from_checkpoint`), which has its own tokens and FLOPs."""
    name = (record.get("run") or {}).get("init_from_checkpoint")
    if name is None:
        return metrics
    return next((c for c in metrics.get("checkpoints", []) if c.get("name") == name), {})


def _swept_values(record: dict[str, Any]) -> dict[str, Any]:
    """A swept run's [sweep] settings as columns, and `sweep` naming them (the sweep analysis reads it)."""
    keys = (record.get("run") or {}).get("sweep_keys") or []
    if not keys:
        return {}
    settings = record["identity"]["settings"]
    return {"sweep": ",".join(keys), **{key: settings[key] for key in keys}}


# What a mid-run checkpoint's row keeps of its pretraining run's row; the rest is the checkpoint's own.
CHECKPOINT_SHARED = ("status", "error", "mode", "size", "seed", "n_params", "n_params_total", "n_layer", "d_model",
                     "n_head", "n_ctx", "vocab_size", "corpus", "target", "data_chars", "data_tokens", "batch_size",
                     "peak_lr", "warmup_steps", "lr_scale", "lr_rule", "schedule", "device", "threads", "dtype")
CHECKPOINT_OWN = ("steps", "tokens_seen", "tokens_per_param", "flops", "flops_6N", "valid_loss", "loss",
                  "pretrain_valid_loss", "checkpoint")


def _checkpoint_rows(record: dict[str, Any], row: dict[str, Any]) -> list[dict[str, Any]]:
    """A pretraining row for each mid-run checkpoint of an ok run: `<run id>@<c>tpp`, pretraining
    `<corpus>@<c>tpp`, its own tokens, FLOPs (what a run of that length costs) and held-out losses."""
    if record["status"] != "ok":
        return []
    rows = []
    for c in record["metrics"].get("checkpoints", []):
        own = {key: c.get(key) for key in CHECKPOINT_OWN}
        rows.append({"run_id": f"{record['run_id']}@{checkpoint_tag(c['checkpoint_tokens_per_param'])}", **{k: row[k] for k in CHECKPOINT_SHARED if k in row},
                     "pretrain": pretrain_name(record["pretrain"], c["checkpoint_tokens_per_param"]),
                     "total_steps": c["steps"], "best_step": c["steps"], "stop_reason": "token_budget",
                     "best_is_last": True, **own})
    return rows


def _tokens_per_param(metrics: dict[str, Any]) -> float | None:
    """Tokens the run trained on per non-embedding parameter (None when the record lacks either); a mid-run
    checkpoint's entry holds its own."""
    if metrics.get("tokens_per_param") is not None:
        return metrics["tokens_per_param"]
    tokens, n = metrics.get("tokens_seen"), metrics.get("n_params")
    return tokens / n if tokens and n else None


def _upgrade_legacy(record: dict[str, Any]) -> dict[str, Any]:
    """A record from before the typed run contract: its `spec` was the identity the id hashes."""
    return {**record, "identity": record["spec"]}
