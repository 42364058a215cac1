"""The package's folders are its architecture: each concern in its own folder, imports going one way only.

Reads every module's imports from its syntax tree (nothing is executed), the lazy ones inside functions
included, and holds them to the order of LAYERS: a folder may import the loose modules, its own modules and
the folders below it, never one above (so no two folders import each other). Only the UI imports gradio;
the teaching material imports no torch.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from densepure_viz.paths import PACKAGE

LAYERS = ("models", "engine", "smoothing", "attacks", "toy2d", "experiments", "viz", "teaching", "serving")  # lowest first
LOOSE = ("__init__", "__main__", "errors", "paths")  # beside the folders; at most two besides __init__/__main__
MODULES = sorted(PACKAGE.rglob("*.py"))


def _imports(path: Path) -> set[str]:
    """Every module `path` imports (absolute dotted names; `from a import b` gives a and a.b)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _home(path: Path) -> str:
    """The folder (or loose module) of a file of the package."""
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def _folder(name: str) -> str | None:
    """The package folder a dotted import name lands in (None outside the package or for a loose module)."""
    parts = name.split(".")
    return parts[1] if parts[0] == "densepure_viz" and len(parts) > 1 and parts[1] in LAYERS else None


def test_every_module_lives_in_a_folder_by_concern():
    homes = {_home(p) for p in MODULES}
    assert homes - set(LOOSE) == set(LAYERS), "a folder was added or removed: declare it in LAYERS"
    loose = {p.stem for p in PACKAGE.glob("*.py")}
    assert loose <= set(LOOSE) and len(loose - {"__init__", "__main__"}) <= 2
    for folder in LAYERS:
        doc = ast.get_docstring(ast.parse((PACKAGE / folder / "__init__.py").read_text()))
        assert doc and "Imports:" in doc, f"{folder}/__init__.py must say what it holds and what it may import"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_go_one_way(path):
    home = _home(path)
    imported = {_folder(name) for name in _imports(path)} - {None, home}
    if home == "__main__":
        assert imported <= {"serving"}
        return
    if home in LOOSE:
        assert not imported, f"{path.name} is loose: it may import no folder, got {sorted(imported)}"
        return
    above = sorted(f for f in imported if LAYERS.index(f) > LAYERS.index(home))
    assert not above, f"{path.relative_to(PACKAGE)} ({home}) imports {above}, above it in {LAYERS}"


def test_only_the_ui_imports_gradio_and_teaching_imports_no_torch():
    ui = PACKAGE / "serving" / "ui"
    for path in MODULES:
        roots = {name.split(".")[0] for name in _imports(path)}
        if "gradio" in roots or "gradio_client" in roots:
            assert path.is_relative_to(ui), f"{path.relative_to(PACKAGE)} imports gradio outside serving/ui"
        if _home(path) == "teaching":
            assert not roots & {"torch", "diffusers", "timm", "gradio"}, f"{path.name} imports {roots}"
            assert {_folder(n) for n in _imports(path)} <= {None}, f"{path.name}: teaching reads paths and errors only"


def test_the_compute_core_imports_neither_gradio_nor_plotly():
    """Figures are viz's (Plotly, never gradio); pages are the UI's; everything else computes."""
    compute = [p for p in MODULES if _home(p) not in ("viz", "serving")]
    assert len(compute) > 20
    for path in compute:
        roots = {name.split(".")[0] for name in _imports(path)}
        assert not {"gradio", "plotly"} & roots, f"{path.relative_to(PACKAGE)} imports gradio or plotly"
    viz = [p for p in MODULES if _home(p) == "viz"]
    assert len(viz) > 4 and not any("gradio" in {n.split(".")[0] for n in _imports(p)} for p in viz)


def test_the_cli_and_the_ui_do_not_import_each_other():
    cli = PACKAGE / "serving" / "cli.py"
    assert not any(n.startswith("densepure_viz.serving.ui") for n in _imports(cli))
    for path in (PACKAGE / "serving" / "ui").rglob("*.py"):
        assert not any(n.startswith("densepure_viz.serving.cli") for n in _imports(path)), path.name


def test_the_check_sees_an_upward_import(tmp_path):
    """The rule can fail: a made-up engine module importing the UI is caught."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from densepure_viz.serving.ui import app\n")
    assert _folder("densepure_viz.serving.ui.app") == "serving" and "densepure_viz.serving.ui" in _imports(bad)
    assert LAYERS.index("serving") > LAYERS.index("engine")


def test_the_ui_runs_no_network():
    """The engine classifies (frames carry their labels; experiments build the High-density view): files that
    import gradio lay out and format only."""
    ui = [p for p in MODULES if "gradio" in {n.split(".")[0] for n in _imports(p)}]
    assert len(ui) > 5
    for path in ui:
        text = path.read_text()
        assert ".predict(" not in text and "inference_mode" not in text, path.relative_to(PACKAGE)


def test_caches_live_on_the_apps_context_not_in_the_ui_modules():
    for path in (PACKAGE / "serving" / "ui").rglob("*.py"):
        if path.name != "session.py":  # where AppContext and its ViewCaches live
            assert "lru_cache" not in path.read_text(), f"{path.name}: keep caches on AppContext.caches"
