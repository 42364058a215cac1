"""The model options every command line of the project takes: `python app.py` and `python -m densepure_viz`.

--model names a preset; --diffusion and --classifier (local folders or hub ids) replace its sources, or, without
--model, make a custom pair whose class names come from --labels or the classifier (`registry.model_spec`).
"""

from __future__ import annotations

import argparse

from densepure_viz.models.registry import REGISTRY, ModelSpec, model_spec, parse_labels


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """--model, --diffusion, --classifier, --labels."""
    parser.add_argument("--model", default=None, help=f"a preset: {', '.join(REGISTRY)} (default: digits, the embedded one)")
    parser.add_argument("--diffusion", help="a diffusers DDPM: local folder or hub id (with --classifier)")
    parser.add_argument("--classifier", help="a timm classifier: local folder or hub id (with --diffusion)")
    parser.add_argument("--labels", help="class names a,b,c,... (default: the preset's, else the classifier's)")


def model_from_options(args: argparse.Namespace) -> ModelSpec:
    """The ModelSpec of parsed model options (InputError when they do not fit together)."""
    return model_spec(args.model, args.diffusion, args.classifier, parse_labels(args.labels))
