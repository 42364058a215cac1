"""A view's row of one-click stories (assets/stories.json, read by densepure_viz.teaching.stories): each button sets every
control to the story's request (densepure_viz.serving.api), then runs the view."""

from __future__ import annotations

from typing import Any

import gradio as gr

from densepure_viz.serving.api import arguments, story_request, view_stories
from densepure_viz.teaching.stories import Story


def story_row(view: str, controls: list, run: dict[str, Any], button: gr.Button,
              after: dict[str, Any] | None = None) -> list:
    """A "Stories" row of the view's stories' buttons and a line saying what to look at; returns the run events
    (for Stop). No stories (none for the view, or a malformed file): no row.

    view: the stories' view, also naming the line's elem_id (<view>-story-look); controls: the view's input
    components, in the order of the view's request fields; run: the view's event (fn, inputs, outputs and queue options),
    chained after the controls are set; button: the view's own Run button, which clears the line (the controls
    may no longer be the story's); after: an event chained when the run succeeds, as on the view's own Run
    button, whose outputs are cleared when a new run starts (they would describe the previous one).
    """
    stories = view_stories(view)
    if not stories:
        return []
    with gr.Row(equal_height=True):
        gr.Markdown('**Stories**<span class="story-how"> (one click sets every control and runs)</span>:')
        buttons = [gr.Button(s.title, size="sm", elem_id=f"story-{s.key}") for s in stories]
    look = gr.Markdown(elem_id=f"{view}-story-look", elem_classes=["story-look"])
    stale = list(after["outputs"]) if after is not None else []

    def clear() -> str | tuple:
        """The emptied line and stale outputs (a lone output's value goes unwrapped: Gradio wraps it itself)."""
        return ("", *[None] * len(stale)) if stale else ""

    button.click(clear, None, [look, *stale], queue=False, api_visibility="private")
    events = []
    for story, story_button in zip(stories, buttons):
        def apply(story: Story = story) -> list:
            return [*arguments(story_request(story)).values(), f"**{story.title}.** {story.look}", *[None] * len(stale)]

        event = story_button.click(apply, None, [*controls, look, *stale], api_visibility="private",
                                   show_progress="hidden").then(**run, api_visibility="private")
        if after is not None:
            event.success(**after, api_visibility="private")
        events.append(event)
    return events
