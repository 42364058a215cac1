"""The vote-study figure: one panel per sigma, a line over K per sampler, references as horizontal lines."""

from __future__ import annotations

import plotly.graph_objects as go

from densepure_viz.viz.plots.study import study_figure
from densepure_viz.experiments.study import Toy2dStudyConfig, study_toy2d


def test_study_figure_panels_and_lines():
    result = study_toy2d(Toy2dStudyConfig(sigmas=(0.5, 1.0), points=200, ks=(1, 4)))
    fig = study_figure(result)
    assert isinstance(fig, go.Figure)
    assert [a["text"] for a in fig.layout.annotations] == ["sigma = 0.5", "sigma = 1"]
    votes = [t for t in fig.data if t.name == "vote, exact posterior samples"]
    assert len(votes) == 2 and list(votes[1].x) == [1, 4]
    assert abs(votes[1].y[1] - 100 * result.get(1.0, "exact posterior samples", 4).accuracy) < 1e-9
    one_shot = [t for t in fig.data if t.name == "one-shot"]
    assert len(one_shot) == 2 and len(set(one_shot[0].y)) == 1  # horizontal
    assert sum(t.showlegend is not False for t in fig.data if t.name == "one-shot") == 1
