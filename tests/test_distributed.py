"""evaluate under torchrun: sharding and merging, and real multi-process runs (gloo on loopback, tiny models).

The truth every run is held to is the single-process run: the same records (every unit exactly once, in
work order) and the same tables, whatever the world size, the number of machines or a killed rank.
Timing fields are the only ones allowed to differ: each record's "seconds", each curve's "seconds" in
results.json (the "s / image" column of results.md) and the JSON's total "seconds".
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from densepure_viz.experiments.distributed import SINGLE, Rank, rank_device, rank_from_env, shard
from densepure_viz.experiments.evaluate import eta_seconds
from densepure_viz.experiments.records import (
    CertifyRecord, append_record, merge_shards, read_all_records, read_records, shard_path, unit_of,
)

ROOT = Path(__file__).resolve().parents[1]
# 6 digits images at the tiny models' 8x8, one sigma, no attacks: 18 units, about 0.1 s each on one core.
SETTINGS = ["--device", "cpu", "--images", "6", "--sigma", "0.5", "--n0", "2", "--draws", "400", "--seeds", "1",
            "--steps", "1", "--json"]
UNITS = 18  # 6 images x 3 methods
TIMEOUT = 240  # seconds for one launcher run on a loaded 2-core machine


# --- the pieces, in process ----------------------------------------------------------------------


def test_rank_comes_from_torchruns_environment():
    assert rank_from_env({}) == SINGLE and not SINGLE.distributed and SINGLE.main
    rank = rank_from_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert rank == Rank(3, 4, 1) and rank.distributed and not rank.main
    assert rank_device(rank, "cpu") == torch.device("cpu")
    assert rank_device(rank, "cuda") == torch.device("cuda", 1)  # one GPU per local rank
    assert rank_device(rank, "cuda:0") == torch.device("cuda", 0)  # an explicit index is the caller's choice


def test_shards_cover_every_item_once_and_differ_by_at_most_one():
    items = [0, 2, 3, 7, 8, 9, 11]
    for world in (1, 2, 3, 4, 8):
        shares = [shard(items, Rank(r, world, r)) for r in range(world)]
        assert sorted(sum(shares, [])) == items
        assert max(map(len, shares)) - min(map(len, shares)) <= 1


def _record(index: int, method: str = "bare") -> CertifyRecord:
    return CertifyRecord(method, 0.5, index, 1, 1, 0.3, 0.6, 7, 0.01)


def _settings(kind: str, name: str) -> dict:
    return {"n": 4}


def test_merge_appends_what_records_lacks_in_work_order_and_removes_the_shards(tmp_path):
    a, b, c, d = _record(0), _record(1), _record(2), _record(3)
    append_record(tmp_path / "records.jsonl", a, {"n": 4})  # a single-process run did image 0
    for record in (c, a):  # rank 0 of a 2-rank run: image 2, and image 0 again
        append_record(shard_path(tmp_path, 0), record, {"n": 4})
    append_record(shard_path(tmp_path, 1), b, {"n": 4})
    append_record(shard_path(tmp_path, 1), d, {"n": 8})  # another setting: kept, not read
    with shard_path(tmp_path, 1).open("a") as f:
        f.write('{"kind": "certify", "settings": {"n": 4}, "meth')  # killed mid-line
    assert read_all_records(tmp_path, _settings) == {unit_of(r): r for r in (a, b, c)}
    merge_shards(tmp_path, [unit_of(r) for r in (a, b, c, d)])
    assert list(tmp_path.iterdir()) == [tmp_path / "records.jsonl"]
    lines = [json.loads(line) for line in (tmp_path / "records.jsonl").read_text().splitlines()]
    assert [(line["index"], line["settings"]["n"]) for line in lines] == [(0, 4), (1, 4), (2, 4), (3, 8)]
    assert read_records(tmp_path / "records.jsonl", _settings) == {unit_of(r): r for r in (a, b, c)}


def test_eta_is_what_is_left_at_the_rate_measured_since_the_start():
    assert eta_seconds(done=10, done_at_start=10, total=50, elapsed=5.0) is None  # nothing measured yet
    assert eta_seconds(done=30, done_at_start=10, total=50, elapsed=10.0) == pytest.approx(10.0)  # 2 units/s, 20 left


# --- real launcher runs (slow) -------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict[str, str]:
    """One thread per process, gloo on the loopback interface only, no inherited torchrun variables."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                                                            "MASTER_PORT")}
    return {**env, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo", "PYTHONPATH": str(ROOT)}


def _launch(launcher: list[str], models: list[str], out: Path) -> subprocess.Popen:
    """`torchrun LAUNCHER -m densepure_viz evaluate ...` (as python -m torch.distributed.run) writing to out."""
    command = [sys.executable, "-m", "torch.distributed.run", *launcher, "-m", "densepure_viz", "evaluate",
               *models, *SETTINGS, "--out", str(out)]
    return subprocess.Popen(command, cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen) -> str:
    """Wait for a launcher; its stdout (the JSON of rank 0) when it succeeded."""
    stdout, stderr = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, stderr[-3000:]
    return stdout


def _one_node(ranks: int) -> list[str]:
    return ["--nproc-per-node", str(ranks), "--master-addr", "127.0.0.1", "--master-port", str(_free_port())]


def _records(out: Path) -> list[dict]:
    """records.jsonl's records, in file order, without their timing field."""
    lines = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    return [{k: v for k, v in line.items() if k != "seconds"} for line in lines]


def _tables(out: Path) -> tuple[dict, str]:
    """results.json without the per-curve seconds, and results.md without its "s / image" column."""
    result = json.loads((out / "results.json").read_text())
    for curve in result["certified"]:
        curve.pop("seconds")
    markdown = "\n".join(line.rsplit("|", 2)[0] if line.startswith("|") else line
                         for line in (out / "results.md").read_text().splitlines())
    return result, markdown


def _same_run(out: Path, reference: Path) -> None:
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in reference.iterdir())  # shards merged away
    records = _records(out)
    assert len(records) == UNITS and len({json.dumps(r, sort_keys=True) for r in records}) == UNITS
    assert records == _records(reference)
    assert _tables(out) == _tables(reference)


@pytest.fixture(scope="module")
def models(tiny_dirs) -> list[str]:
    diffusion, classifier = tiny_dirs
    return ["--diffusion", str(diffusion), "--classifier", str(classifier)]


@pytest.fixture(scope="module")
def single(models, tmp_path_factory) -> Path:
    """The reference: the same command without torchrun, in a process of its own."""
    out = tmp_path_factory.mktemp("single")
    command = [sys.executable, "-m", "densepure_viz", "evaluate", *models, *SETTINGS, "--out", str(out)]
    done = subprocess.run(command, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(_records(out)) == UNITS
    return out


@pytest.mark.slow
def test_two_ranks_give_the_single_process_records_and_tables(models, single, tmp_path):
    stdout = _finish(_launch(_one_node(2), models, tmp_path))  # torchrun parses `--draws 400` (not `--n`)
    assert json.loads(stdout)["files"]["records"] == str(tmp_path / "records.jsonl")  # rank 0 alone prints
    _same_run(tmp_path, single)


def _worker_pid(launcher: int, rank: int) -> int:
    """The process id of the worker with RANK=rank among the launcher's children (from /proc)."""
    for entry in Path("/proc").iterdir():
        try:
            status = (entry / "status").read_text()
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (FileNotFoundError, PermissionError, NotADirectoryError, ProcessLookupError):
            continue
        if f"PPid:\t{launcher}\n" in status and f"RANK={rank}".encode() in environ:
            return int(entry.name)
    raise AssertionError(f"no worker of rank {rank} under process {launcher}")


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.is_file() else 0


@pytest.mark.slow
def test_a_killed_rank_is_rerun_and_the_run_completes_unchanged(models, single, tmp_path):
    launcher = _one_node(2)
    proc = _launch(launcher, models, tmp_path)
    shard1 = shard_path(tmp_path, 1)
    deadline = time.monotonic() + TIMEOUT
    while _lines(shard1) < 1:  # rank 1 has recorded its first unit
        assert proc.poll() is None and time.monotonic() < deadline, "rank 1 never recorded a unit"
        time.sleep(0.01)
    os.kill(_worker_pid(proc.pid, 1), signal.SIGKILL)
    proc.communicate(timeout=TIMEOUT)
    assert proc.returncode != 0  # torchrun reports the failed worker and stops the other one
    assert 1 <= _lines(shard1) < UNITS // 2  # killed mid-run: part of its share is recorded
    assert not (tmp_path / "records.jsonl").exists()  # nothing merged yet
    _finish(_launch(launcher, models, tmp_path))  # the same command again
    _same_run(tmp_path, single)


@pytest.mark.slow
def test_two_nodes_with_a_c10d_rendezvous_give_the_same_run(models, single, tmp_path):
    rendezvous = ["--nnodes", "2", "--nproc-per-node", "1", "--rdzv-backend", "c10d", "--rdzv-endpoint",
                  f"127.0.0.1:{_free_port()}", "--rdzv-id", "two-nodes", "--local-addr", "127.0.0.1"]
    nodes = [_launch(rendezvous, models, tmp_path) for _ in range(2)]
    outputs = [_finish(node) for node in nodes]
    assert sum(bool(out.strip()) for out in outputs) == 1  # one node holds rank 0, which alone prints
    _same_run(tmp_path, single)
