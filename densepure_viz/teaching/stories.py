"""One-click stories for a class, read from assets/stories.json: settings of a view under which an effect happens.

Each story in the file is an object {"key", "view", "title", "look", "controls", "expect"}: `view` is "purify",
"certify" or "regions"; `controls` gives every input of that view's endpoint by its parameter name (the app's
request dataclasses, densepure_viz.serving.api, which pass their names in as `parameters`; image paths relative to
the repository root), so gradio_client's `predict(**controls, api_name="/<view>")` replays it; `expect` gives fields of the view's JSON output the story claims, by name or dotted path into nested
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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from densepure_viz.paths import ROOT

log = logging.getLogger(__name__)

FILE = ROOT / "assets" / "stories.json"
Parameters = Mapping[str, tuple[str, ...]]  # each view endpoint's parameter names, in order
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

    def mismatches(self, output: dict) -> list[str]:
        """The expected fields the view's JSON output does not have (empty: the story happened)."""
        wrong = []
        for path, want in self.expect.items():
            got = field(output, path)
            if not _same(got, want):
                wrong.append(f"{self.key}: {path} is {got!r}, expected {want!r}")
        return wrong


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


def parse(items: Any, parameters: Parameters) -> tuple[Story, ...]:
    """The stories of the file's decoded JSON, for the views and endpoint parameters given; ValueError saying what is
    wrong (the first fault found)."""
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
        if item["view"] not in parameters:
            raise ValueError(f"{where} has unknown view {item['view']!r} (one of {', '.join(parameters)})")
        if not all(isinstance(item[f], str) and item[f] for f in ("key", "title", "look")):
            raise ValueError(f"{where}: key, title and look must be non-empty strings")
        if not isinstance(item["controls"], dict) or not isinstance(item["expect"], dict) or not item["expect"]:
            raise ValueError(f"{where}: controls must be an object, expect a non-empty object")
        names = parameters[item["view"]]
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


def load(path: Path, parameters: Parameters) -> tuple[Story, ...]:
    """The stories of `path`; none, after one warning line, when it is missing or malformed (read once per path)."""
    return _load(path, tuple((view, tuple(names)) for view, names in parameters.items()))


@functools.cache
def _load(path: Path, parameters: tuple[tuple[str, tuple[str, ...]], ...]) -> tuple[Story, ...]:
    try:
        return parse(json.loads(path.read_text(encoding="utf-8")), dict(parameters))
    except (OSError, ValueError) as exc:  # json.JSONDecodeError is a ValueError
        log.warning("stories file %s: %s; the app serves without stories", path, str(exc).replace("\n", " "))
        return ()


def for_view(view: str, parameters: Parameters) -> tuple[Story, ...]:
    """The stories of one view (from FILE), in the file's order."""
    return tuple(s for s in load(FILE, parameters) if s.view == view)
