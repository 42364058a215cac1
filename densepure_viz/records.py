"""Resumable records of an evaluation: one JSON line per finished unit of work.

An evaluation (densepure_viz.evaluate) appends each finished (method, sigma, image) certificate and
(threat, eps, sigma, image) attack to a JSON-lines file as soon as it exists, tagged with the settings
it depends on. Reading the file back keeps the records whose settings still match, so a rerun skips
what is done: an interrupted run continues where it stopped, and changing one setting recomputes only
what it affects. A run killed mid-write leaves a half-written last line; reading ignores it and the
next append starts a new line.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

RECORDS = "records.jsonl"  # the file's name in an evaluation's output folder


@dataclass
class CertifyRecord:
    """CERTIFY of one image with one smoothed classifier."""

    method: str  # one of evaluate.METHODS
    sigma: float  # smoothing std
    index: int  # image index in the evaluated set
    label: int  # true class
    predicted: int | None  # certified class, None when abstaining
    radius: float  # certified L2 radius (0 when abstaining)
    p_lower: float  # Clopper-Pearson lower bound on the top class's probability
    count: int  # estimation draws voting for the selected class
    seconds: float  # wall time of this certificate


@dataclass
class RobustRecord:
    """One attacked image and what each classifier says about it."""

    threat: str  # one of attacks.THREATS
    eps: float  # attack budget
    sigma: float  # the defence's (and the adaptive attacker's) smoothing std
    index: int  # image index in the evaluated set
    label: int  # true class
    bare: int  # bare classifier on the adversarial image
    densepure: int  # DensePure's K-seed vote on one noise draw of the adversarial image
    success: bool  # the attack reached its goal on its own target
    target_label_rate: float  # share of the attacker's draws that comply
    seconds: float  # wall time of attack + defence


Record = CertifyRecord | RobustRecord
Unit = tuple[str, str, float, float | None, int]  # (kind, method or threat, sigma, eps or None, index)
Settings = Callable[[str, str], dict]  # (kind, method or threat) -> the settings a record must carry to count


def unit_of(record: Record) -> Unit:
    """The unit of work a record finishes: its key in read_records' answer."""
    if isinstance(record, CertifyRecord):
        return ("certify", record.method, record.sigma, None, record.index)
    return ("robust", record.threat, record.sigma, record.eps, record.index)


def _settings_key(settings: dict) -> str:
    return json.dumps(settings, sort_keys=True)


def read_records(path: Path, settings: Settings) -> dict[Unit, Record]:
    """Records in `path` whose settings equal settings(kind, method or threat) (a half-written line is ignored)."""
    if not path.is_file():
        return {}
    found: dict[Unit, Record] = {}
    for line in path.read_text().splitlines():
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue
        kind, tagged = obj.pop("kind"), obj.pop("settings")
        record = CertifyRecord(**obj) if kind == "certify" else RobustRecord(**obj)
        unit = unit_of(record)
        if _settings_key(tagged) == _settings_key(settings(kind, unit[1])):
            found[unit] = record
    return found


def append_record(path: Path, record: Record, settings: dict) -> None:
    """Append one record as a JSON line (starting a new line if a killed run left a partial one)."""
    kind = unit_of(record)[0]
    text = json.dumps({"kind": kind, "settings": settings, **asdict(record)}) + "\n"
    with path.open("a+") as f:
        f.seek(0, 2)
        if f.tell() > 0:
            f.seek(f.tell() - 1)
            if f.read(1) != "\n":
                text = "\n" + text
        f.write(text)
