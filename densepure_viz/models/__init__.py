"""The models: the registry of presets, safe loading of diffusers UNets and timm classifiers (a hub id or a
local folder), the digits data, image files to tensors, and the seeded training of the embedded models.

Imports: densepure_viz.errors and densepure_viz.paths only.
"""
