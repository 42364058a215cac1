"""The models: the registry of presets, safe loading of diffusers UNets and timm classifiers (a hub id or a
local folder), running the networks on a CPU as TorchScript traces (tracing: bit for bit, without the GIL
between operators), the digits data, image files to tensors, and the seeded training of the embedded models.

Imports: densepure_viz.errors and densepure_viz.paths only.
"""
