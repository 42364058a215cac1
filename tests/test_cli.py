"""The command line contract: JSON keys, reproducibility, folder TSV, one-line errors (shipped digits model)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from densepure_viz.serving.cli import main
from densepure_viz.paths import ASSETS

SAMPLES = ASSETS / "samples" / "digits"


def sample(label: int) -> Path:
    return sorted(SAMPLES.glob(f"*_label{label}.png"))[0]


def run_json(capsys, *argv: str) -> dict:
    assert main(list(argv) + ["--json", "--device", "cpu"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.slow
def test_purify_json_contract_and_known_label(capsys):
    out = run_json(capsys, "purify", str(sample(3)), "--sigma", "0.25", "--seeds", "4", "--steps", "5", "--seed", "0")
    assert {"label", "votes", "per_seed", "t_star"} <= out.keys()
    assert len(out["per_seed"]) == 4 and sum(out["votes"].values()) == 4
    assert out["votes"][str(out["label"])] == max(out["votes"].values())
    assert out["label"] == 3  # a clean held-out "3" at sigma 0.25 is purified to a 3


@pytest.mark.slow
def test_certify_json_contract_and_reproducibility(capsys):
    argv = ["certify", str(sample(0)), "--sigma", "0.25", "--n0", "10", "--n", "40", "--alpha", "0.01",
            "--seeds", "2", "--steps", "3", "--seed", "5"]
    first, second = run_json(capsys, *argv), run_json(capsys, *argv)
    assert first == {**second, "time": first["time"]}
    assert {"label", "radius", "p_lower", "count", "n", "alpha", "sigma", "t_star"} <= first.keys()
    assert first["n"] == 40 and first["alpha"] == 0.01 and first["sigma"] == 0.25
    if first["label"] is None:
        assert first["radius"] == 0
    else:
        assert first["label"] == 0 and first["radius"] > 0 and first["count"] <= 40


@pytest.mark.slow
def test_folder_writes_reference_tsv(tmp_path, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for label in (1, 7):
        (folder / sample(label).name).write_bytes(sample(label).read_bytes())
    tsv = tmp_path / "out.tsv"
    assert main(["certify", str(folder), "--sigma", "0.25", "--n0", "5", "--n", "20", "--alpha", "0.05",
                 "--seeds", "1", "--sampler", "one-shot", "--out", str(tsv)]) == 0
    rows = [line.split("\t") for line in tsv.read_text().splitlines()]
    assert rows[0] == ["idx", "label", "predict", "radius", "correct", "time"]
    assert [r[1] for r in rows[1:]] == ["1", "7"]
    assert all(r[4] == str(int(r[1] == r[2])) for r in rows[1:])


BAD_INPUT = [  # (argv, the one line on stderr must contain)
    (["purify", "README.md"], "not an image"),
    (["purify", "no-such-file.png"], "no such image"),
    (["purify", "SAMPLE", "--sigma", "0"], "sigma"),
    (["certify", "SAMPLE", "--n0", "0"], "n0"),
    (["certify", "SAMPLE", "--n", "0"], "n must"),
    (["certify", "SAMPLE", "--alpha", "1.5"], "alpha"),
    (["purify", "SAMPLE", "--model", "nope"], "unknown model"),
    (["purify", "SAMPLE", "--diffusion", "somewhere"], "--diffusion and --classifier go together"),
    (["purify", "SAMPLE", "--labels", "a,,b"], "--labels"),
]


def with_sample(argv: list[str]) -> list[str]:
    return [str(sample(2)) if a == "SAMPLE" else a for a in argv]


@pytest.mark.parametrize("argv, message", BAD_INPUT)
def test_bad_input_exits_2_with_one_line(argv, message, capsys):
    try:
        status = main(with_sample(argv))
    except SystemExit as exc:  # argparse's own refusals exit from inside main
        status = exc.code
    out, err = capsys.readouterr()
    assert status == 2 and out == ""
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def python_m(*argv: str) -> subprocess.CompletedProcess:
    """`python -m densepure_viz ...` in a fresh interpreter, from the repository root."""
    return subprocess.run([sys.executable, "-m", "densepure_viz", *argv], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parent.parent)


@pytest.mark.slow
def test_python_m_refuses_bad_input_with_status_2_and_one_line():
    proc = python_m("purify", "README.md")
    assert proc.returncode == 2 and proc.stdout == ""
    assert "not an image" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_python_m_json_is_the_only_thing_on_stdout():
    proc = python_m("purify", str(sample(3)), "--sigma", "0.25", "--seeds", "2", "--steps", "2", "--seed", "0",
                    "--json", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)  # the whole of stdout is one JSON object
    assert {"label", "votes", "per_seed", "t_star"} <= out.keys() and len(out["per_seed"]) == 2


def test_alpha_is_checked_before_any_work(monkeypatch, capsys):
    """certify --alpha 0.7 used to run the selection draws, then fail inside scipy; now it stops up front."""
    import densepure_viz.models.registry

    def no_loading(*args, **kwargs):
        raise AssertionError("the models must not be loaded for a bad alpha")

    monkeypatch.setattr(densepure_viz.models.registry, "load_models", no_loading)
    assert main(["certify", str(sample(0)), "--alpha", "0.7"]) == 2
    err = capsys.readouterr().err
    assert "alpha must be in (0, 0.5]" in err and len(err.strip().splitlines()) == 1


def test_folder_json_alone_on_stdout(tmp_path, capsys):
    """certify FOLDER --json without --out: stdout is one JSON object (no TSV mixed in); --draws is --n."""
    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / sample(4).name).write_bytes(sample(4).read_bytes())
    assert main(["certify", str(folder), "--sigma", "0.25", "--n0", "3", "--draws", "7", "--seeds", "1",
                 "--sampler", "one-shot", "--json", "--device", "cpu"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["n"] for r in out["results"]] == [7] and out["results"][0]["image"].endswith(sample(4).name)


def test_top_level_help_imports_no_engine():
    """`python -m densepure_viz --help` declares no command's arguments, so it imports neither torch nor the engine."""
    code = ("import sys; from densepure_viz.serving.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'diffusers', 'timm', 'densepure_viz.engine.purify') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parent.parent)
    assert proc.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.slow
def test_sequential_certify_decides_at_a_radius(tmp_path, capsys):
    """certify --sequential --radius R: JSON carries decision, draws_used and the radius the bound supports."""
    argv = ["certify", str(sample(1)), "--sequential", "--radius", "0.2", "--n", "300", "--sigma", "0.5",
            "--seeds", "1", "--sampler", "one-shot", "--alpha", "0.01"]
    out = run_json(capsys, *argv)
    assert {"decision", "draws_used", "radius", "top_class", "p_lower", "p_upper"} <= out.keys()
    assert out["decision"] in ("certified", "not_certified", "abstain", "undecided") and 1 <= out["draws_used"] <= 300
    if out["decision"] == "certified":  # the supported radius reaches the target, and the label is the top class
        assert out["radius"] >= 0.2 and out["label"] == out["top_class"] and out["p_lower"] > 0.5
    again = run_json(capsys, *argv)
    assert again == {**out, "time": again["time"]}  # seeded: the same decision after the same draws
    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / sample(1).name).write_bytes(sample(1).read_bytes())
    assert main([*argv[:1], str(folder), *argv[2:], "--out", str(tmp_path / "s.tsv")]) == 0
    head, row = (line.split("\t") for line in (tmp_path / "s.tsv").read_text().splitlines())
    assert head[-2:] == ["decision", "draws_used"] and row[-2] == out["decision"] and row[-1] == str(out["draws_used"])


def test_radius_needs_sequential(capsys):
    assert main(["certify", str(sample(1)), "--radius", "0.5"]) == 2
    assert "--sequential" in capsys.readouterr().err


def test_study_report_only_rebuilds_the_shipped_table(tmp_path, capsys):
    """`study --report-only` summarises existing records without computing: the shipped records give the shipped table."""
    shipped = ASSETS / "results" / "study"
    (tmp_path / "records.jsonl").write_bytes((shipped / "records.jsonl").read_bytes())
    assert main(["study", "--out", str(tmp_path), "--sigma", "0.25", "0.5", "0.75", "1.0", "--draws", "3",
                 "--report-only", "--no-page", "--device", "cpu"]) == 0
    assert (tmp_path / "results.md").read_text() == (shipped / "results.md").read_text()


def test_a_preset_with_local_sources_keeps_its_class_names(tiny_dirs, capsys):
    """--model cifar10 --diffusion DIR --classifier DIR: the preset's names on other weights (run on the RGB replicas in
    test_rgb.py); without --model the pair names its classes from --labels, else from the classifier."""
    from densepure_viz.models.registry import CIFAR10_LABELS, REGISTRY, model_spec

    unet, classifier = map(str, tiny_dirs)
    spec = model_spec("cifar10", unet, classifier)
    assert (spec.name, spec.labels, spec.diffusion, spec.classifier) == ("cifar10", CIFAR10_LABELS, unet, classifier)
    assert REGISTRY["cifar10"].diffusion == "google/ddpm-cifar10-32"  # the registry itself is untouched
    custom = model_spec(None, unet, classifier, tuple("abcdefghij"))
    assert custom.labels == tuple("abcdefghij") and not custom.dark_background and custom.name != "digits"
    assert model_spec() is REGISTRY["digits"]
    out = run_json(capsys, "purify", str(sample(2)), "--diffusion", unet, "--classifier", classifier,
                   "--labels", "a,b,c,d,e,f,g,h,i,j", "--seeds", "2", "--steps", "2")
    assert out["label_name"] == "abcdefghij"[out["label"]]


def write_bad_model_folders(root: Path, tiny_dirs: tuple[Path, Path]) -> None:
    """Model folders under `root` that must be refused: empty, malformed JSON, truncated weights, missing config."""
    import shutil

    unet, classifier = tiny_dirs
    (root / "empty").mkdir(parents=True)
    for name in ("unet-json", "unet-truncated"):
        shutil.copytree(unet, root / name)
    for name in ("classifier-json", "classifier-truncated", "classifier-no-config"):
        shutil.copytree(classifier, root / name)
    (root / "unet-json" / "unet" / "config.json").write_text("{not json")
    weights = root / "unet-truncated" / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    (root / "classifier-json" / "config.json").write_text('{"architecture": "resnet18",')
    (root / "classifier-truncated" / "model.safetensors").write_bytes(b"\x10" * 100)
    (root / "classifier-no-config" / "config.json").unlink()


BAD_MODELS = [  # (model options, the one line on stderr must contain); {unet}, {classifier}: the tiny grey 8x8 pair
    ("--diffusion {tmp}/missing --classifier {classifier}", "does not exist"),
    ("--diffusion missing/folder --classifier {classifier}", "hf download missing/folder --local-dir DIR"),
    ("--model cifar10", "hf download google/ddpm-cifar10-32 --local-dir DIR"),  # the hub, unreachable
    ("--diffusion {bad}/empty --classifier {classifier}", "lacks config.json"),
    ("--diffusion {bad}/unet-json --classifier {classifier}", "not a valid JSON"),
    ("--diffusion {bad}/unet-truncated --classifier {classifier}", "not a diffusers DDPM"),
    ("--diffusion {classifier} --classifier {unet}", "lacks diffusion_pytorch_model.safetensors"),  # swapped
    ("--diffusion {unet} --classifier {bad}/empty", "has no model.safetensors"),
    ("--diffusion {unet} --classifier {bad}/classifier-json", "not a loadable timm classifier"),
    ("--diffusion {unet} --classifier {bad}/classifier-truncated", "not a loadable timm classifier"),
    ("--diffusion {unet} --classifier {bad}/classifier-no-config", "not a loadable timm classifier"),
    ("--diffusion {unet} --classifier {classifier} --labels a,b,c", "--labels names 3 classes, but the classifier"),
    ("--model cifar10 --diffusion {unet} --classifier {classifier}", "is for 3x32x32 images"),
    ("--diffusion {unet} --classifier {rgb}/classifier", "takes 3-channel input"),
]


@pytest.mark.parametrize("options, message", BAD_MODELS)
def test_bad_models_exit_2_with_one_line(options, message, tiny_dirs, tmp_path, capsys, monkeypatch):
    """Every model the loader cannot use is one line (status 2), never a traceback, and the hub is never contacted."""
    from conftest import save_tiny_models
    from densepure_viz.models import registry

    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(registry, "_hub_reachable", lambda timeout=3.0: False)
    write_bad_model_folders(tmp_path / "bad", tiny_dirs)
    if "{rgb}" in options:
        save_tiny_models(tmp_path / "rgb", channels=3)
    places = {"unet": tiny_dirs[0], "classifier": tiny_dirs[1], "tmp": tmp_path, "bad": tmp_path / "bad",
              "rgb": tmp_path / "rgb"}
    assert main(["purify", str(sample(2)), *options.format(**places).split(), "--device", "cpu"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
