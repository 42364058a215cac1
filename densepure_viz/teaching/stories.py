"""One-click stories for a class, read from assets/stories.json: settings of a view under which an effect happens.

Each story in the file is an object {"key", "view", "title", "look", "controls", "expect"}: `view` is "purify",
"certify" or "regions"; `controls` gives every input of that view's endpoint by its parameter name (PARAMETERS;
image paths relative to the repository root), so gradio_client's `predict(**controls, api_name="/<view>")`
replays it; `expect` gives fields of the view's JSON output the story claims, by name or dotted path into nested
objects ("attack.input_label", "densepure.radius"); numbers match within TOLERANCE. The values were found by a
seeded search on the shipped digits models and the exact 2D world (`scripts/find_stories.py`, record in
assets/results/stories/search.json); tests/test_stories.py replays every story and checks every expected field.

A malformed file is reported in one line (a warning naming the file and the fault) and the app serves without
stories. No torch here: this module is read by scripts and tests that need no models.
"""

from __future__ import annotations

import functools
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from densepure_viz.paths import ROOT

log = logging.getLogger(__name__)

FILE = ROOT / "assets" / "stories.json"
PARAMETERS: dict[str, tuple[str, ...]] = {  # each view endpoint's inputs, in order (ui/*_tab.py)
    "purify": ("image", "model", "sigma", "seeds", "sampler", "steps", "seed", "attack", "norm", "eps",
               "attack_steps", "threat"),
    "certify": ("image", "model", "sigma", "seeds", "sampler", "steps", "seed", "n0", "n", "alpha", "compare",
                "target", "stop_early"),
    "regions": ("preset", "sigma", "x0_x", "x0_y", "xa_x", "xa_y", "seeds", "steps", "method", "labeler", "seed", "n"),
}
FIELDS = ("key", "view", "title", "look", "controls", "expect")  # what every story has
TOLERANCE = 1e-4  # an expected number matches an output within this


@dataclass(frozen=True)
class Story:
    """One story of the file."""

    key: str  # stable id (the button's elem_id is story-<key>)
    view: str  # "purify", "certify" or "regions"
    title: str  # the button's text
    look: str  # one line: what to look at once it has run
    controls: dict[str, Any]  # every input of the view's endpoint by parameter name, image relative to ROOT
    expect: dict[str, Any]  # fields of the view's JSON output (dotted paths) and the values the story claims

    def args(self) -> tuple:
        """The endpoint's arguments in the order of its inputs, the image path made absolute."""
        return endpoint_args(self.view, self.controls)

    def mismatches(self, output: dict) -> list[str]:
        """The expected fields the view's JSON output does not have (empty: the story happened)."""
        wrong = []
        for path, want in self.expect.items():
            got = field(output, path)
            if not _same(got, want):
                wrong.append(f"{self.key}: {path} is {got!r}, expected {want!r}")
        return wrong


def endpoint_args(view: str, controls: dict[str, Any]) -> tuple:
    """A view endpoint's arguments from its controls by name, in the order of its inputs, the image path absolute."""
    return tuple(str(ROOT / controls[p]) if p == "image" else controls[p] for p in PARAMETERS[view])


def field(output: dict, path: str) -> Any:
    """A field of a JSON output by dotted path ("densepure.radius"); None when absent."""
    return functools.reduce(lambda d, k: d.get(k) if isinstance(d, dict) else None, path.split("."), output)


def _same(got: Any, want: Any) -> bool:
    """Equal; objects field by field, bools exactly, numbers within TOLERANCE."""
    if isinstance(want, dict):
        return isinstance(got, dict) and got.keys() == want.keys() and all(_same(got[k], v) for k, v in want.items())
    if isinstance(want, bool) or isinstance(got, bool):
        return got is want
    if isinstance(want, float) and isinstance(got, (int, float)):
        return math.isclose(got, want, abs_tol=TOLERANCE)
    return got == want


def parse(items: Any) -> tuple[Story, ...]:
    """The stories of the file's decoded JSON; ValueError saying what is wrong (the first fault found)."""
    if not isinstance(items, list):
        raise ValueError("expected a list of stories")
    stories: list[Story] = []
    for i, item in enumerate(items):
        where = f"story {i + 1}" + (f" ({item['key']!r})" if isinstance(item, dict) and "key" in item else "")
        if not isinstance(item, dict):
            raise ValueError(f"{where} is not an object")
        if missing := [f for f in FIELDS if f not in item]:
            raise ValueError(f"{where} has no {', '.join(missing)}")
        if unknown := sorted(set(item) - set(FIELDS)):
            raise ValueError(f"{where} has unknown fields {', '.join(unknown)}")
        if item["view"] not in PARAMETERS:
            raise ValueError(f"{where} has unknown view {item['view']!r} (one of {', '.join(PARAMETERS)})")
        if not all(isinstance(item[f], str) and item[f] for f in ("key", "title", "look")):
            raise ValueError(f"{where}: key, title and look must be non-empty strings")
        if not isinstance(item["controls"], dict) or not isinstance(item["expect"], dict) or not item["expect"]:
            raise ValueError(f"{where}: controls must be an object, expect a non-empty object")
        names = PARAMETERS[item["view"]]
        if unknown := sorted(set(item["controls"]) - set(names)):
            raise ValueError(f"{where} has unknown controls {', '.join(unknown)} (the {item['view']} view's: "
                             f"{', '.join(names)})")
        if missing := [p for p in names if p not in item["controls"]]:
            raise ValueError(f"{where} lacks controls {', '.join(missing)}")
        if "image" in names and not (ROOT / str(item["controls"]["image"])).is_file():
            raise ValueError(f"{where}: image {item['controls']['image']!r} is not a file under {ROOT}")
        if any(s.key == item["key"] for s in stories):
            raise ValueError(f"{where}: key {item['key']!r} appears twice")
        stories.append(Story(**{f: item[f] for f in FIELDS}))
    return tuple(stories)


@functools.cache
def load(path: Path) -> tuple[Story, ...]:
    """The stories of `path`; none, after one warning line, when it is missing or malformed (read once per path)."""
    try:
        return parse(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:  # json.JSONDecodeError is a ValueError
        log.warning("stories file %s: %s; the app serves without stories", path, str(exc).replace("\n", " "))
        return ()


def for_view(view: str) -> tuple[Story, ...]:
    """The stories of one view (from FILE), in the file's order."""
    return tuple(s for s in load(FILE) if s.view == view)
