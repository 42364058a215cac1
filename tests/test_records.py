"""Resumable records: what is appended reads back, stale settings and a half-written line are skipped."""

from densepure_viz.experiments.records import CertifyRecord, RobustRecord, append_record, read_records, unit_of

CERT = CertifyRecord("densepure", 0.25, 3, 7, None, 0.0, 0.41, 12, 1.5)
ROBUST = RobustRecord("adaptive", 0.5, 0.25, 3, 7, 1, 7, True, 0.75, 2.0)


def settings(kind: str, name: str) -> dict:
    return {"kind": kind, "name": name, "n": 100}


def test_appended_records_read_back_by_unit(tmp_path):
    path = tmp_path / "records.jsonl"
    assert read_records(path, settings) == {}
    for record in (CERT, ROBUST):
        append_record(path, record, settings(*unit_of(record)[:2]))
    assert read_records(path, settings) == {unit_of(CERT): CERT, unit_of(ROBUST): ROBUST}
    assert unit_of(CERT) == ("certify", "densepure", 0.25, None, 3)
    assert unit_of(ROBUST) == ("robust", "adaptive", 0.25, 0.5, 3)


def test_changed_settings_and_a_half_written_line_are_skipped(tmp_path):
    path = tmp_path / "records.jsonl"
    append_record(path, CERT, settings("certify", "densepure"))
    append_record(path, ROBUST, {**settings("robust", "adaptive"), "n": 50})  # written under other settings
    assert read_records(path, settings) == {unit_of(CERT): CERT}
    path.write_text(path.read_text()[:-7])  # killed mid-line
    assert read_records(path, settings) == {unit_of(CERT): CERT}
    append_record(path, ROBUST, settings("robust", "adaptive"))  # starts a new line
    assert read_records(path, settings) == {unit_of(CERT): CERT, unit_of(ROBUST): ROBUST}
    assert len(path.read_text().splitlines()) == 3
