"""The running app through gradio_client: same labels as the CLI for the same seeds; bad input is refused."""

from __future__ import annotations

import ast
import json
import socket
from dataclasses import replace
from pathlib import Path

import pytest
from gradio_client import Client, handle_file

from densepure_viz.serving import cli
from densepure_viz.paths import ASSETS
from densepure_viz.models.registry import load_models
from densepure_viz.serving.api import CertifyRequest, PurifyRequest, RegionsRequest, arguments
from densepure_viz.serving.ui import build_app
from densepure_viz.serving.ui.app import launch_options

SAMPLES = sorted((ASSETS / "samples" / "digits").glob("*.png"))
SHIPPED = (ASSETS / "digits" / "diffusion").is_dir() and (ASSETS / "digits" / "classifier").is_dir()
pytestmark = [pytest.mark.skipif(not SAMPLES, reason="no shipped samples: run scripts/export_samples.py"),
              pytest.mark.slow]  # a live server per module


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(loader):
    """Launch the app on a free loopback port in this process (Gradio's server thread); (demo, client)."""
    demo = build_app(loader=loader, names=("digits",), device="cpu")
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **launch_options())
    return demo, Client(f"http://127.0.0.1:{port}/", verbose=False)


@pytest.fixture(scope="module")
def tiny_server(tiny_models):
    demo, client = serve(lambda name, device: tiny_models)
    yield client
    demo.close()


def run_cli(capsys, argv: list[str]) -> dict:
    capsys.readouterr()
    assert cli.main(argv) == 0
    return json.loads(capsys.readouterr().out)


def purify_api(client: Client, image: Path, sigma=0.5, seeds=4, sampler="fast", steps=5, seed=3) -> dict:
    request = PurifyRequest(handle_file(str(image)), "digits", sigma, seeds, sampler, steps, seed, attack="none")
    out = client.predict(**arguments(request), api_name="/purify")
    return out[6]


def certify_api(client: Client, image: Path, seeds=2, steps=3, n0=10, n=60, seed=1) -> dict:
    request = CertifyRequest(handle_file(str(image)), "digits", 0.5, seeds, "fast", steps, seed, n0, n, 0.001, True)
    out = client.predict(**arguments(request), api_name="/certify")
    return out[3]


def test_purify_and_certify_match_the_cli(tiny_server, tiny_dirs, capsys):
    image = SAMPLES[0]
    model = ["--diffusion", str(tiny_dirs[0]), "--classifier", str(tiny_dirs[1]), "--device", "cpu"]
    got = purify_api(tiny_server, image)
    want = run_cli(capsys, ["purify", str(image), *model, "--seeds", "4", "--steps", "5", "--seed", "3", "--json"])
    for key in ("label", "per_seed", "votes", "t_star", "input_label", "noisy_label", "one_shot_label"):
        assert got[key] == want[key], key
    got = certify_api(tiny_server, image)["densepure"]
    want = run_cli(capsys, ["certify", str(image), *model, "--seeds", "2", "--steps", "3", "--seed", "1",
                            "--n0", "10", "--n", "60", "--sequential", "--json"])  # the view certifies anytime-validly
    for key in ("label", "top_class", "decision", "draws_used", "count", "counts", "p_lower", "p_upper", "radius"):
        assert got[key] == pytest.approx(want[key]), key
    assert got["fixed_n_p_lower"] >= 0 and got["fixed_n_radius"] >= 0  # the fixed-n bound on the same draws


@pytest.mark.parametrize("args, message", [
    ({"sigma": -1.0}, "less than minimum"),  # sliders and numbers: Gradio's own range check answers first
    ({"sigma": 1e9}, "greater than maximum"),
    ({"seeds": 0}, "less than minimum"),
    ({"seeds": 10**9}, "greater than maximum"),
    ({"seeds": 2.5}, "K \\(seeds\\) must be a whole number"),  # then the app's validators
    ({"steps": 100_000}, "greater than maximum"),
    ({"model": "../../etc"}, "not in the list of choices"),
    ({"sampler": "ddim"}, "not in the list of choices"),
    ({"seed": -5}, "less than minimum"),
    ({"image": None}, "no input image"),
])
def test_bad_parameters_are_refused_and_the_server_keeps_answering(tiny_server, args, message):
    call = PurifyRequest(handle_file(str(SAMPLES[0])), "digits", 0.5, 2, "fast", 2, 0, attack_steps=2)
    with pytest.raises(Exception, match=message):
        tiny_server.predict(**arguments(replace(call, **args)), api_name="/purify")
    regions = RegionsRequest("clusters", 0.75, -1.8, -0.3, -0.4, 0.2, seeds=4, steps=10, n=100)
    assert tiny_server.predict(**arguments(regions), api_name="/regions")[4]["K"] == 4


def test_bad_files_are_refused(tiny_server, tmp_path):
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"\x89PNG\r\n\x1a\n but truncated")
    with pytest.raises(Exception, match="corrupt|not an image"):
        certify_api(tiny_server, junk)
    assert purify_api(tiny_server, SAMPLES[1], seeds=2, steps=2)["seeds"] == 2


@pytest.mark.skipif(not SHIPPED, reason="the shipped digits models are not in assets/digits yet")
def test_shipped_digits_model_end_to_end(capsys):
    models = load_models("digits", device="cpu")
    demo, client = serve(lambda name, device: models)
    try:
        image = next(p for p in SAMPLES if "label3" in p.name)
        got = purify_api(client, image, seeds=8, steps=10, seed=0)
        want = run_cli(capsys, ["purify", str(image), "--device", "cpu", "--json"])
        assert (got["label"], got["per_seed"]) == (want["label"], want["per_seed"])
        assert got["label"] == 3, "the shipped model should purify a clean 3 to 3"
        got = certify_api(client, image, seeds=4, steps=10, n0=20, n=100, seed=0)["densepure"]
        want = run_cli(capsys, ["certify", str(image), "--device", "cpu", "--n0", "20", "--n", "100", "--sequential", "--json"])
        assert (got["label"], got["count"], got["radius"]) == (want["label"], want["count"], pytest.approx(want["radius"]))
    finally:
        demo.close()


def test_the_readmes_scripting_example_runs(tiny_server, capsys):
    """README's "Scripting it" block, run as written against a served app (its URL swapped in)."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme[readme.index("### Scripting it"):readme.index("### Running it")]
    code = section.split("```python\n")[1].split("```")[0]
    assert "http://127.0.0.1:7860/" in code
    exec(compile(code.replace("http://127.0.0.1:7860/", tiny_server.src), "README.md", "exec"), {})
    purified, certified = capsys.readouterr().out.splitlines()[-2:]  # after gradio_client's "Loaded as API" line
    label, votes = purified.split(" ", 1)
    assert int(label) in range(10) and sum(ast.literal_eval(votes).values()) == 8  # K = 8 votes
    decision, draws = certified.split()
    assert decision in ("certified", "not_certified", "abstain", "undecided") and 10 < int(draws) <= 110
