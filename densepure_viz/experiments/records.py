"""Resumable records of an evaluation: one JSON line per finished unit of work.

An evaluation (densepure_viz.experiments.evaluate) appends each finished (method, sigma, image) certificate, sequential
certificate and (threat, eps, sigma, image) attack to a JSON-lines file as soon as it exists, tagged with the settings
it depends on. Reading the file back keeps the records whose settings still match, so a rerun skips
what is done: an interrupted run continues where it stopped, and changing one setting recomputes only
what it affects. A run killed mid-write leaves a half-written last line; reading ignores it and the
next append starts a new line.

Under torchrun each rank appends to its own shard, records.rank{r}.jsonl, so no two processes write one
file. Resuming reads records.jsonl and every shard, whatever world size wrote them; at the end rank 0
merges the shards into records.jsonl and removes them, so a finished run has the single-process layout.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

RECORDS = "records.jsonl"  # the file's name in an evaluation's output folder
SHARD = "records.rank{rank}.jsonl"  # a torchrun rank's own records file, next to RECORDS until merged


@dataclass
class ImageCertificate:
    """Whose certificate a record is: the smoothed classifier, its smoothing std, the image and its true class."""

    method: str  # one of evaluate.METHODS
    sigma: float  # smoothing std
    index: int  # image index in the evaluated set
    label: int  # true class


@dataclass
class CertifyRecord(ImageCertificate):
    """CERTIFY of one image with one smoothed classifier."""

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


@dataclass
class SequentialRecord(ImageCertificate):
    """Sequential CERTIFY of one image with one smoothed classifier, decided at each target radius in one pass."""

    radii: list[float]  # target radii R
    decisions: list[str]  # per R: certified | not_certified | abstain | undecided
    top_classes: list[int]  # per R: cA at the look that decided
    draws: list[int]  # per R: draws used to decide (selection draws included)
    p_lowers: list[float]  # per R: anytime-valid lower bound on P(base = cA) at that look
    seconds: float  # wall time of the pass (up to the last decision)


Record = CertifyRecord | RobustRecord | SequentialRecord
Unit = tuple[str, str, float, float | None, int]  # (kind, method or threat, sigma, eps or None, index)
RECORD_TYPES: dict[str, type] = {"certify": CertifyRecord, "robust": RobustRecord, "sequential": SequentialRecord}
Settings = Callable[[str, str], dict]  # (kind, method or threat) -> the settings a record must carry to count


def unit_of(record: Record) -> Unit:
    """The unit of work a record finishes: its key in read_records' answer."""
    if isinstance(record, CertifyRecord):
        return ("certify", record.method, record.sigma, None, record.index)
    if isinstance(record, SequentialRecord):
        return ("sequential", record.method, record.sigma, None, record.index)
    return ("robust", record.threat, record.sigma, record.eps, record.index)


def _settings_key(settings: dict) -> str:
    return json.dumps(settings, sort_keys=True)


def shard_path(out: Path, rank: int) -> Path:
    """The records shard of torchrun rank `rank` in output folder `out`."""
    return out / SHARD.format(rank=rank)


def shard_paths(out: Path) -> list[Path]:
    """Every rank's shard in `out`, from any earlier world size, in rank order."""
    return sorted(out.glob(SHARD.format(rank="*")), key=lambda p: int(p.name.split(".")[1].removeprefix("rank")))


def count_shard_lines(out: Path) -> int:
    """Lines in all shards of `out` (each complete line is one record; cheap enough to poll per record)."""
    return sum(path.read_bytes().count(b"\n") for path in shard_paths(out))


def tagged_lines(path: Path) -> Iterator[tuple[str, dict, dict]]:
    """(kind, settings, fields) of each complete tagged line of `path` (a half-written line is skipped)."""
    if not path.is_file():
        return
    for line in path.read_text().splitlines():
        try:
            obj = json.loads(line)
            kind, settings = obj.pop("kind"), obj.pop("settings")
        except (json.JSONDecodeError, KeyError, AttributeError):
            continue
        yield kind, settings, obj


def tagged(kind: str, settings: dict, record: Any) -> dict:
    """A record dataclass as one line's object: its kind, the settings it depends on, its fields."""
    return {"kind": kind, "settings": settings, **asdict(record)}


def _entries(path: Path) -> Iterator[tuple[dict, Record]]:
    """(settings, record) of each complete line of `path` (a half-written line is skipped)."""
    for kind, settings, fields in tagged_lines(path):
        yield settings, RECORD_TYPES[kind](**fields)


def read_records(path: Path, settings: Settings) -> dict[Unit, Record]:
    """Records in `path` whose settings equal settings(kind, method or threat) (a half-written line is ignored)."""
    found: dict[Unit, Record] = {}
    for tagged, record in _entries(path):
        unit = unit_of(record)
        if _settings_key(tagged) == _settings_key(settings(unit[0], unit[1])):
            found[unit] = record
    return found


def read_all_records(out: Path, settings: Settings) -> dict[Unit, Record]:
    """read_records over records.jsonl and every shard in `out`: all the work done so far, however split."""
    found: dict[Unit, Record] = {}
    for path in [out / RECORDS, *shard_paths(out)]:
        found.update(read_records(path, settings))
    return found


def merge_shards(out: Path, units: Sequence[Unit]) -> None:
    """Append to records.jsonl every shard record it lacks (in the order of `units`), then remove the shards.

    A record counts as present when records.jsonl holds its unit under the same settings; records of other
    settings are merged too, as a single process would have kept them. Run by one process after a barrier.
    """
    def key(tagged: dict, record: Record) -> tuple[Unit, str]:
        return unit_of(record), _settings_key(tagged)

    position = {unit: i for i, unit in enumerate(units)}  # records of other units go last, in file order
    target, shards = out / RECORDS, shard_paths(out)
    present = {key(*entry) for entry in _entries(target)}
    missing: dict[tuple[Unit, str], tuple[dict, Record]] = {}
    for path in shards:
        for entry in _entries(path):
            if key(*entry) not in present:
                missing.setdefault(key(*entry), entry)
    for tagged, record in sorted(missing.values(), key=lambda entry: position.get(unit_of(entry[1]), len(units))):
        append_record(target, record, tagged)
    for path in shards:
        path.unlink()


def append_record(path: Path, record: Record, settings: dict) -> None:
    """Append one record as a JSON line, tagged with its kind and settings."""
    append_json_lines(path, [tagged(unit_of(record)[0], settings, record)])


def append_json_lines(path: Path, objects: Iterable[dict]) -> None:
    """Append objects as JSON lines, starting a new line if a killed run left a partial one."""
    text = "".join(json.dumps(obj) + "\n" for obj in objects)
    with path.open("a+") as f:
        f.seek(0, 2)
        if f.tell() > 0:
            f.seek(f.tell() - 1)
            if f.read(1) != "\n":
                text = "\n" + text
        f.write(text)
