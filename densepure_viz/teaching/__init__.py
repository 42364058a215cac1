"""What the explorer teaches with: the one-click stories (assets/stories.json) and the glossary. No torch.

Imports: densepure_viz.paths and densepure_viz.errors only.
"""
