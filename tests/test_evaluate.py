"""Evaluation: table shape and truths, resume without recomputation, outputs, on tiny random-weight models."""

import json
from dataclasses import replace
from functools import partial

import pytest
import torch

import densepure_viz.experiments.evaluate as ev
from densepure_viz.smoothing.certify import certify
from densepure_viz.serving.cli import main
from densepure_viz.experiments.evaluate import EvaluationConfig, EvaluationResult, evaluate
from densepure_viz.viz.plots.evaluation import certified_accuracy_figure
from densepure_viz.smoothing.base import bare_base
from densepure_viz.experiments.results import load_results, markdown_table, save_results
from densepure_viz.engine.seeding import derive_seed
from densepure_viz.experiments.records import read_records

pytestmark = pytest.mark.slow  # whole evaluations on tiny models: seconds to a minute each

CFG = EvaluationConfig(sigmas=(0.25, 0.5), n0=4, n=24, alpha=0.05, seeds=2, steps=2, eps=(0.5,), attack_steps=2,
                       eot_samples=2)


@pytest.fixture(scope="module")
def data(tiny_models):
    """Four random images; labels agree with the bare classifier on half of them, so accuracy is neither 0 nor 1."""
    images = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    labels = tiny_models.predict(images)
    labels[1::2] = (labels[1::2] + 1) % tiny_models.num_classes
    return images, labels


@pytest.fixture(scope="module")
def full_run(tiny_models, data, tmp_path_factory):
    out = tmp_path_factory.mktemp("full")
    return evaluate(tiny_models, *data, CFG, out, progress=False), out


def _records(out):
    return [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]


def _without_time(result: EvaluationResult) -> dict:
    obj = result.to_json()
    for curve in obj["certified"]:
        curve.pop("seconds")
    return obj


def test_certified_accuracy_is_non_increasing_and_starts_at_smoothed_clean_accuracy(tiny_models, data, full_run):
    result, out = full_run
    records = _records(out)
    assert len(result.certified) == 6  # 2 sigmas x 3 methods
    for curve in result.certified:
        accuracies = [curve.accuracy(r) for r in CFG.radii]
        assert all(a >= b for a, b in zip(accuracies, accuracies[1:]))
        mine = [r for r in records if (r["kind"], r.get("method"), r["sigma"]) == ("certify", curve.method, curve.sigma)]
        assert len(mine) == 4
        assert accuracies[0] == sum(r["predicted"] == r["label"] for r in mine) / 4
    images, labels = data
    for curve in (c for c in result.certified if c.method == "bare"):  # recomputed with the engine alone
        smoothed = [certify(bare_base(tiny_models, x, curve.sigma, derive_seed(CFG.seed, i)), tiny_models.num_classes,
                            curve.sigma, CFG.certify_config()).label for i, x in enumerate(images)]
        assert curve.accuracy(0.0) == sum(p == int(y) for p, y in zip(smoothed, labels)) / 4


def test_resume_continues_without_recomputing(tiny_models, data, full_run, tmp_path, monkeypatch):
    images, labels = data
    evaluate(tiny_models, images[:2], labels[:2], CFG, tmp_path, progress=False)  # "interrupted" after 2 images
    first = (tmp_path / "records.jsonl").read_text()
    calls = []
    for name in ("certify_record", "robust_record"):
        real = getattr(ev, name)
        monkeypatch.setattr(ev, name, lambda *a, _real=real, **k: calls.append(a[3]) or _real(*a, **k))
    resumed = evaluate(tiny_models, images, labels, CFG, tmp_path, progress=False)
    assert set(calls) == {2, 3} and len(calls) == 2 * (6 + 4)  # only the new images: 6 certificates, 4 attacks each
    assert (tmp_path / "records.jsonl").read_text().startswith(first)
    assert _without_time(resumed) == _without_time(full_run[0])
    calls.clear()
    evaluate(tiny_models, images, labels, CFG, tmp_path, progress=False)
    assert calls == []


def test_changed_settings_recompute_only_what_they_affect(tiny_models, data, full_run, tmp_path, monkeypatch):
    """A line cut by a killed run is recomputed; a changed n0 recomputes certificates but not attacks."""
    (tmp_path / "records.jsonl").write_text((full_run[1] / "records.jsonl").read_text()[:-7])  # killed mid-line
    calls = []
    for name in ("certify_record", "robust_record"):
        real = getattr(ev, name)
        monkeypatch.setattr(ev, name, lambda *a, _real=real, **k: calls.append((a[4], a[3])) or _real(*a, **k))
    evaluate(tiny_models, *data, replace(CFG, n0=5), tmp_path, progress=False)
    certified = [c for c in calls if c[0] in ev.METHODS]
    assert sorted({m for m, _ in certified}) == ["bare", "densepure", "one-shot"] and len(certified) == 3 * 2 * 4
    assert [c for c in calls if c[0] not in ev.METHODS] == [("adaptive", 3)]  # attacks ignore n0; only the cut line


def test_robust_rows_are_consistent(full_run):
    result, _ = full_run
    assert len(result.robust) == 4  # 2 threats x 1 eps x 2 sigmas
    for row in result.robust:
        assert row.images == 4 and 0 <= row.densepure_accuracy <= 1
        if row.threat == "classifier":  # its own target is the bare classifier
            assert row.attack_success == pytest.approx(1 - row.bare_accuracy)


def test_outputs_round_trip_and_plot(full_run, tmp_path):
    result, _ = full_run
    markdown, results_json = save_results(result, tmp_path)
    text = markdown.read_text()
    assert "r = 0.5" in text and "DensePure" in text and "adaptive" in text
    assert len([line for line in text.splitlines() if line.startswith("| 0.")]) == 6
    again = load_results(results_json)
    assert again == result and markdown_table(again) == text
    fig = certified_accuracy_figure(again)
    assert len(fig.data) == 6
    for trace, curve in zip(fig.data, result.certified):
        ys = list(trace.y)
        assert ys[0] == pytest.approx(100 * curve.accuracy(0.0))
        assert all(a >= b for a, b in zip(ys, ys[1:]))


def test_config_rejects_bad_values():
    for kwargs in ({"sigmas": ()}, {"radii": (0.5, 0.25)}, {"n": 0}, {"seeds": 0}, {"eps": (-1.0,)}):
        with pytest.raises(ValueError):
            EvaluationConfig(**kwargs)


def test_evaluate_cli_writes_table_json_and_figure(tiny_dirs, tmp_path, capsys):
    diffusion, classifier = tiny_dirs
    argv = ["evaluate", "--diffusion", str(diffusion), "--classifier", str(classifier), "--device", "cpu",
            "--sigma", "0.25", "--n0", "2", "--n", "8", "--seeds", "2", "--steps", "2", "--images", "2",
            "--out", str(tmp_path), "--json"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["images"] == 2 and len(result["table"]) == 3
    for name in ("results.md", "results.json", "certified_accuracy.html", "records.jsonl"):
        assert (tmp_path / name).is_file()
    assert 'src="http' not in (tmp_path / "certified_accuracy.html").read_text()  # plotly.js embedded: renders offline
    assert main(argv[:-1] + ["--images", "100000"]) == 2


SEQ = replace(CFG, eps=(), radii=(0.0, 0.1, 0.25), sequential=True)  # same n0, n: same fixed-n records


@pytest.fixture(scope="module")
def sequential_run(tiny_models, data, tmp_path_factory):
    out = tmp_path_factory.mktemp("sequential")
    return evaluate(tiny_models, *data, SEQ, out, progress=False), out


def test_sequential_decisions_are_the_engines_and_fixed_n_is_unchanged(tiny_models, data, full_run, sequential_run):
    """Each sequential record equals sequential_certify run alone at that radius on the image's draws; the table
    counts those; and adding --sequential leaves fixed-n's certificates exactly as they were."""
    from densepure_viz.smoothing.sequential import SequentialConfig, sequential_certify

    result, out = sequential_run
    images, labels = data
    seq_records = [r for r in _records(out) if r["kind"] == "sequential"]
    assert len(seq_records) == 4 * 2 * 3 and len(result.sequential) == 6
    for rec in seq_records:
        if rec["method"] != "bare":
            continue  # the bare base is enough to tie the records to the engine; the others share the code path
        base = bare_base(tiny_models, images[rec["index"]], rec["sigma"], derive_seed(SEQ.seed, rec["index"]))
        for j, radius in enumerate(SEQ.radii):
            alone = sequential_certify(base, tiny_models.num_classes, rec["sigma"],
                                       SequentialConfig(alpha=SEQ.alpha, n=SEQ.n, radius=radius))
            assert (rec["decisions"][j], rec["draws"][j], rec["top_classes"][j]) == (
                alone.decision, alone.draws_used, alone.top_class)
    for curve in result.sequential:
        mine = [r for r in seq_records if (r["method"], r["sigma"]) == (curve.method, curve.sigma)]
        for j, radius in enumerate(SEQ.radii):
            correct = sum(r["decisions"][j] == "certified" and r["top_classes"][j] == r["label"] for r in mine)
            assert curve.accuracy(radius) == correct / 4
            assert sorted(curve.draws[j]) == sorted(r["draws"][j] for r in mine)
            assert all(1 <= d <= SEQ.n for d in curve.draws[j])
    full = {(r["method"], r["sigma"], r["index"]): r for r in _records(full_run[1]) if r["kind"] == "certify"}
    mine = [r for r in _records(out) if r["kind"] == "certify"]
    assert len(mine) == 4 * 2 * 3
    for r in mine:
        assert {k: v for k, v in r.items() if k != "seconds"} == {
            k: v for k, v in full[(r["method"], r["sigma"], r["index"])].items() if k != "seconds"}


def test_sequential_table_and_figure(sequential_run, tmp_path):
    from densepure_viz.viz.plots.evaluation import sequential_draws_figure

    result, _ = sequential_run
    save_results(result, tmp_path)
    text = (tmp_path / "results.md").read_text()
    assert "### Sequential CERTIFY" in text
    assert text.count("| DensePure (Xiao et al.) |") == 2 * 3 + 2  # fixed-n rows + sequential rows (2 sigmas x 3 R)
    again = load_results(tmp_path / "results.json")
    assert again.sequential == result.sequential
    fig = sequential_draws_figure(result)
    *curves, fixed = fig.data
    assert len(curves) == 2 * 3  # one line per (sigma, R) of DensePure, then fixed-n's
    for trace in curves:
        assert list(trace.y) == sorted(trace.y)
    assert list(fixed.y) == [SEQ.n0 + SEQ.n] * 2


def test_evaluate_cli_sequential_writes_its_table_and_draws_figure(tiny_dirs, tmp_path, capsys):
    diffusion, classifier = tiny_dirs
    argv = ["evaluate", "--diffusion", str(diffusion), "--classifier", str(classifier), "--device", "cpu",
            "--sigma", "0.25", "--n0", "2", "--n", "12", "--seeds", "2", "--steps", "2", "--images", "2",
            "--out", str(tmp_path), "--json", "--sequential", "--radii", "0", "0.25"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert [len(c["draws"]) for c in result["sequential"]] == [2, 2, 2]  # 3 methods x 2 radii
    assert result["files"]["draws_figure"].endswith("sequential_draws.html")
    assert 'src="http' not in (tmp_path / "sequential_draws.html").read_text()
    assert "Sequential CERTIFY" in (tmp_path / "results.md").read_text()
    assert main(argv[:-2] + ["0.25", "0"]) == 2  # radii must increase


def test_records_of_another_image_source_are_not_reused(tiny_models, data, full_run, tmp_path):
    """A folder's run (cfg.data) never resumes from the digits' records in the same folder, and vice versa; the
    digits' settings keep their keys, so existing records (assets/results) still resume."""
    _, out = full_run
    assert "data" not in CFG.settings("certify", "bare", "m")
    folder_cfg = replace(CFG, data="/some/cifar10-export")
    assert folder_cfg.settings("certify", "bare", "m") == {**CFG.settings("certify", "bare", "m"), "data": "/some/cifar10-export"}
    (tmp_path / "records.jsonl").write_bytes((out / "records.jsonl").read_bytes())
    settings = partial(folder_cfg.settings, model=tiny_models.name)
    assert read_records(tmp_path / "records.jsonl", settings) == {}
    assert len(read_records(tmp_path / "records.jsonl", partial(CFG.settings, model=tiny_models.name))) == 4 * (6 + 4)
