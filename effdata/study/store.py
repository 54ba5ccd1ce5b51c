"""The results store of one study directory: run plans, records, the results table.

    <out>/study.json                  the study's identity (a different study in the same out is refused)
    <out>/runs/<run_id>/run.json      the run as planned (`StudyRun.to_dict()`): what a worker executes
    <out>/runs/<run_id>/record.json   written atomically when the run ends (ok or failed)
    <out>/results.csv                 one row per record, regenerated from the records

A run is done when its record exists, parses, and belongs to its id. Anything else (no record, a
half-written or foreign record, a failed record) is run again.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from effdata.paths import atomic_write_json, atomic_write_text
from effdata.spec import SpecError, StudyRun, identity_hash
from effdata.study.study import Study, StudyError

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

    def checkpoint_dir(self, run_id: str) -> Path:
        return self.run_dir(run_id) / "checkpoint"

    @property
    def results_path(self) -> Path:
        return self.out_dir / "results.csv"

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

    def write_record(self, run: StudyRun, status: str, metrics: dict | None = None, error: str | None = None,
                     spec: dict | None = None) -> None:
        atomic_write_json(self.run_dir(run.run_id) / RECORD, {
            "run_id": run.run_id, "status": status, "error": error, "identity": run.identity(),
            "run": run.to_dict(), "spec": spec or run.spec.to_dict(), "pretrain": run.pretrain,
            "depends_on": list(run.depends_on), "metrics": metrics or {},
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        })

    def records(self) -> Iterator[dict[str, Any]]:
        if not self.runs_dir.exists():
            return
        for run_dir in sorted(self.runs_dir.iterdir()):
            record = self.read_record(run_dir.name)
            if record is not None:
                yield record

    def write_table(self) -> Path:
        """Regenerate results.csv from every record (the analyzer's input)."""
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
            row["tokens_per_param"] = _tokens_per_param(metrics)
            row["pretrain_flops"] = sum(ok.get(dep, {}).get("flops", 0.0) for dep in r["depends_on"])
            row["pretrain_tokens_per_param"] = sum(_tokens_per_param(ok.get(dep, {})) or 0.0
                                                   for dep in r["depends_on"]) or None
            rows.append(row)
        table = pd.DataFrame(rows)
        self.results_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.results_path, table.to_csv(index=False))
        return self.results_path


def _tokens_per_param(metrics: dict[str, Any]) -> float | None:
    """Tokens the run trained on per non-embedding parameter (None when the record lacks either)."""
    tokens, n = metrics.get("tokens_seen"), metrics.get("n_params")
    return tokens / n if tokens and n else None


def _upgrade_legacy(record: dict[str, Any]) -> dict[str, Any]:
    """A record from before the typed run contract: its `spec` was the identity the id hashes."""
    return {**record, "identity": record["spec"]}
