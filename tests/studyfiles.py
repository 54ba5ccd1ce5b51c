"""Study files for tests: jobs/smoke.toml pointed at the tiny corpora the tests write."""
from __future__ import annotations

import json
import tomllib
from pathlib import Path

SMOKE = Path(__file__).resolve().parent.parent / "jobs" / "smoke.toml"


def toml_value(value) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return repr(value)


def write_study(path: Path, corpora: dict[str, str], **changes) -> Path:
    """jobs/smoke.toml with the tiny corpora as target and pretraining data; a dict in `changes`
    updates that table, anything else replaces the key."""
    study = tomllib.loads(SMOKE.read_text())
    study.update(target=corpora["python"], vocab_size=384,
                 tokenizer_corpora=[corpora["python"], corpora["text"]])
    study["pretrain"]["corpora"] = [corpora["text"]]
    for key, value in changes.items():
        if isinstance(value, dict):
            study.setdefault(key, {}).update(value)
        else:
            study[key] = value
    lines = [f"{k} = {toml_value(v)}" for k, v in study.items() if not isinstance(v, dict)]
    for table, values in study.items():
        if isinstance(values, dict):
            lines += ["", f"[{table}]"] + [f"{k} = {toml_value(v)}" for k, v in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return path
