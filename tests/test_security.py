"""What the running app lets a visitor read or write (issue 6): file routes, uploads, and unsafe code.

Against a live server on loopback: traversal, absolute, encoded and URL paths through Gradio 6's file
routes (/gradio_api/file=, /gradio_api/file/, the old /file=) and its static routes are refused,
while uploads and the gallery's sample digits are served. Uploads are capped in size, live in
Gradio's temp folder and are deleted (on the cleanup schedule and at shutdown). The package never
unpickles, evaluates or shells out, and never trusts remote code.
"""

from __future__ import annotations

import ast
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import huggingface_hub
import pytest
from gradio.utils import get_upload_folder
from huggingface_hub.errors import LocalEntryNotFoundError
from huggingface_hub.utils import filter_repo_objects
from test_app_client import SAMPLES, free_port

from densepure_viz.models import registry as models_module
from densepure_viz.models.images import MAX_BYTES
from densepure_viz.paths import ASSETS
from densepure_viz.serving.ui import app as app_module
from densepure_viz.serving.ui import build_app
from densepure_viz.serving.ui.app import launch_options

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "densepure_viz"
WEIGHTS = ASSETS / "digits" / "classifier" / "model.safetensors"
pytestmark = pytest.mark.skipif(not SAMPLES, reason="no shipped samples: run scripts/export_samples.py")


def launch(tiny_models) -> tuple:
    demo = build_app(loader=lambda name, device: tiny_models, names=("digits",), device="cpu")
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **launch_options())
    return demo, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def server(tiny_models):
    demo, url = launch(tiny_models)
    with httpx.Client(base_url=url, timeout=30) as http:
        yield http
    demo.close()


def upload(http: httpx.Client, name: str, data: bytes) -> str:
    r = http.post("/gradio_api/upload", files={"files": (name, data)})
    r.raise_for_status()
    return r.json()[0]


SECRETS = {  # what must never come back: a file's first bytes
    "/etc/passwd": b"root:",
    str(ROOT / "app.py"): (ROOT / "app.py").read_bytes()[:40],
    str(PACKAGE / "models" / "registry.py"): (PACKAGE / "models" / "registry.py").read_bytes()[:40],
    str(WEIGHTS): WEIGHTS.read_bytes()[:40] if WEIGHTS.is_file() else b"\x00" * 40,
}
ATTEMPTS = [
    "/etc/passwd", "//etc/passwd", "/etc/./passwd", "/ETC/passwd", "/proc/self/environ", "file:///etc/passwd",
    "../../../../../../etc/passwd", "..%2f..%2f..%2f..%2fetc%2fpasswd", "%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "%252e%252e%252f%252e%252e%252fetc%252fpasswd", "%2Fetc%2Fpasswd", "..\\..\\..\\etc\\passwd",
    "/tmp/gradio/../../etc/passwd", f"{get_upload_folder()}/../../etc/passwd", ".gradio/cached_examples/../../app.py",
    str(ROOT / "app.py"), "app.py", "../app.py", "densepure_viz/models/registry.py", str(PACKAGE / "models" / "registry.py"),
    quote(str(PACKAGE / "models" / "registry.py"), safe=""), str(WEIGHTS), "assets/digits/classifier/model.safetensors",
    str(SAMPLES[0].parent / ".." / ".." / ".." / "app.py"), str(SAMPLES[0].parent / ".." / ".." / "digits" / "unet"),
    str(ROOT / "assets" / "screenshots" / "about.png"),  # shipped, but not something the page serves
]
PREFIXES = ["/gradio_api/file=", "/gradio_api/file/", "/file="]


def refused(r: httpx.Response) -> bool:
    return r.status_code in (400, 403, 404) and not any(secret in r.content for secret in SECRETS.values())


@pytest.mark.slow
@pytest.mark.parametrize("prefix", PREFIXES)
def test_file_routes_refuse_paths_the_app_does_not_serve(server, prefix):
    leaks = [(path, r.status_code) for path in ATTEMPTS if not refused(r := server.get(prefix + path))]
    assert not leaks, leaks


@pytest.mark.slow
def test_file_routes_refuse_uploaded_paths_that_climb_out(server):
    path = upload(server, "x.png", SAMPLES[0].read_bytes())
    for attempt in (f"{path}/../../../etc/passwd", f"{path}/../../../../{ROOT / 'app.py'}", path.replace("x.png", "../../etc/passwd")):
        assert refused(server.get("/gradio_api/file=" + attempt)), attempt


@pytest.mark.slow
@pytest.mark.parametrize("path", [
    "/static/../../../../etc/passwd", "/static/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "/assets/..%2f..%2f..%2fapp.py",
    "/assets/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "/gradio_api/custom_component/x/client/..%2f..%2fetc/passwd",
    "/svelte/..%2f..%2f..%2fetc/passwd",
])
def test_static_routes_do_not_climb_out(server, path):
    assert refused(server.get(path)), path


@pytest.mark.slow
@pytest.mark.parametrize("url", ["http://127.0.0.1:{port}/config", "http://localhost:{port}/gradio_api/info",
                                 "http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/", "http://[::1]:{port}/"])
def test_file_route_does_not_fetch_private_addresses(server, url):
    """Gradio 6 proxies public http(s) URLs through /file=; loopback, link-local and private ones are refused."""
    port = server.base_url.port
    for prefix in ("/gradio_api/file=", "/gradio_api/proxy="):
        r = server.get(prefix + url.format(port=port))
        assert r.status_code in (400, 403, 404), (prefix, url, r.status_code)


@pytest.mark.slow
def test_uploads_and_samples_are_served(server):
    data = SAMPLES[1].read_bytes()
    path = upload(server, "mine.png", data)
    assert Path(path).resolve().is_relative_to(Path(get_upload_folder()).resolve())  # Gradio's temp folder
    r = server.get("/gradio_api/file=" + path)
    assert r.status_code == 200 and r.content == data
    config = server.get("/config").json()
    gallery = next(c for c in config["components"] if c["props"].get("elem_id") == "purify-samples")
    urls = [item["image"]["url"] for item in gallery["props"]["value"]]
    assert len(urls) == len(SAMPLES)
    for url in urls[:3]:
        r = server.get(url)
        assert r.status_code == 200 and r.content.startswith(b"\x89PNG")
    r = server.get("/gradio_api/file=" + str(SAMPLES[0]))  # the gallery hands sample paths to the image input
    assert r.status_code == 200 and r.content == SAMPLES[0].read_bytes()


@pytest.mark.slow
def test_uploads_are_capped(server):
    r = server.post("/gradio_api/upload", files={"files": ("big.png", b"\x00" * (MAX_BYTES + 1))})
    assert r.status_code == 413
    assert upload(server, "ok.png", b"\x00" * 1000)  # below the cap: fine


def test_launch_serves_only_the_samples():
    options = launch_options()
    assert options["allowed_paths"] == [str(SAMPLES[0].parent)]
    blocked = [Path(p) for p in options["blocked_paths"]]
    assert PACKAGE in blocked and ROOT / "app.py" in blocked and ASSETS / "digits" in blocked
    assert options["max_file_size"] == MAX_BYTES
    assert options["state_session_capacity"] == app_module.SESSION_CAPACITY <= 1000  # memory per visitor is bounded
    assert not {"share", "auth", "server_name"} & set(options)  # no public tunnel; the host is the caller's choice


@pytest.mark.slow
def test_uploads_are_deleted_on_schedule_and_at_shutdown(tiny_models, monkeypatch):
    monkeypatch.setattr(app_module, "CACHE_CLEANUP", (1, 1))  # every second, files older than a second
    demo, url = launch(tiny_models)
    assert demo.delete_cache == (1, 1)
    try:
        with httpx.Client(base_url=url, timeout=30) as http:
            old = Path(upload(http, "old.png", SAMPLES[0].read_bytes()))
            assert old.is_file()
            end = time.monotonic() + 15
            while old.exists() and time.monotonic() < end:
                time.sleep(0.2)
            assert not old.exists(), "an upload outlived the cleanup schedule"
            assert http.get(f"/gradio_api/file={old}").status_code in (403, 404)
            fresh = Path(upload(http, "fresh.png", SAMPLES[1].read_bytes()))
    finally:
        demo.close()
    assert not fresh.exists(), "an upload outlived the server"


def test_the_app_keeps_an_hourly_cleanup():
    demo = build_app(loader=lambda name, device: None, names=("digits",), device="cpu")
    assert demo.delete_cache == app_module.CACHE_CLEANUP and max(app_module.CACHE_CLEANUP) <= 24 * 3600


# --- the code itself -------------------------------------------------------------------------------------------

SOURCES = sorted(PACKAGE.rglob("*.py")) + [ROOT / "app.py"] + sorted((ROOT / "scripts").glob("*.py"))


def _name(node: ast.AST) -> str:
    """'torch.load' for torch.load(...), 'eval' for eval(...)."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_name(node.value)}.{node.attr}"
    return ""


def _unsafe_calls(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name = _name(node.func)
        kwargs = {k.arg: k.value for k in node.keywords if k.arg}
        true = {k for k, v in kwargs.items() if isinstance(v, ast.Constant) and v.value is True}
        if name in ("eval", "exec", "compile", "__import__", "os.system", "os.popen", "pickle.load", "pickle.loads",
                    "pickle.Unpickler", "dill.load", "joblib.load", "marshal.loads", "shelve.open", "yaml.load",
                    "yaml.unsafe_load"):
            found.append(f"{name}() line {node.lineno}")
        if name.endswith("torch.load") and "weights_only" not in true:
            found.append(f"{name}() without weights_only=True, line {node.lineno}")
        if true & {"trust_remote_code", "shell", "allow_pickle"}:
            found.append(f"{name}({', '.join(sorted(true))}=True) line {node.lineno}")
        if name.endswith(".from_pretrained") and not name.startswith(("DDPMScheduler", "AutoConfig")) \
                and "use_safetensors" not in true:
            found.append(f"{name}() without use_safetensors=True, line {node.lineno}")
    return found


def test_the_scanner_finds_what_it_looks_for():
    bad = ("eval(x)\nexec(y)\nimport pickle\npickle.load(f)\ntorch.load(p)\nm.from_pretrained(p, trust_remote_code=True)\n"
           "subprocess.run(c, shell=True)\nUNet2DModel.from_pretrained(p)\n")
    assert len(_unsafe_calls(bad)) == 8
    assert not _unsafe_calls("model.eval()\ntorch.load(p, weights_only=True)\nx.from_pretrained(p, use_safetensors=True)\n")


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_unpickling_eval_shell_or_remote_code(path):
    text = path.read_text()
    assert not _unsafe_calls(text), _unsafe_calls(text)
    assert "trust_remote_code=True" not in text and "shell=True" not in text


# a hub model repo as it often is: safetensors beside pickled copies of the same weights, and code
HUB_REPO = [
    "model_index.json", "README.md", "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
    "unet/diffusion_pytorch_model.bin", "scheduler/scheduler_config.json", "config.json", "model.safetensors",
    "pytorch_model.bin", "model.pt", "weights.pth", "model.ckpt", "stats.pkl", "extra.pickle", "tf_model.h5",
    "modeling_resnet.py", "open_clip_pytorch_model.bin", "flax_model.msgpack", "sub/dir/pipeline.py",
]
UNSAFE = {"bin", "pt", "pth", "ckpt", "pkl", "pickle", "h5", "msgpack", "py"}


def test_hub_downloads_fetch_no_pickle_formats(tmp_path, monkeypatch):
    """What resolve_source asks the hub for, filtered by huggingface_hub's own pattern matching, over a real-looking repo."""
    requests = []

    def snapshot_download(repo_id, *, allow_patterns=None, ignore_patterns=None, local_files_only=False, **kwargs):
        requests.append(local_files_only)
        fetched = list(filter_repo_objects(HUB_REPO, allow_patterns=allow_patterns, ignore_patterns=ignore_patterns))
        if local_files_only:
            raise LocalEntryNotFoundError("not cached")
        folder = tmp_path / "snapshot"
        for name in fetched:
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text("x")
        return str(folder)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    monkeypatch.setattr(models_module, "_hub_reachable", lambda timeout=3.0: True)
    root = models_module.resolve_source("google/ddpm-cifar10-32")
    fetched = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert requests == [True, False]  # the cache first, then the download
    assert not [f for f in fetched if f.rsplit(".", 1)[-1] in UNSAFE], fetched
    assert {"unet/diffusion_pytorch_model.safetensors", "model.safetensors", "unet/config.json",
            "scheduler/scheduler_config.json", "model_index.json"} <= set(fetched), fetched
