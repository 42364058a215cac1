"""Experiments at scale: certified-accuracy evaluation (resumable records, tables, torchrun), the vote study,
the image-space projections of high-density points, the model card and the slow references the engine is
held to.

Imports: toy2d, attacks, smoothing, engine, models.
"""
