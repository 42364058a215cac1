"""The DensePure engine: noise level <-> diffusion step, seeded noise streams, the batched reverse process,
the majority vote, device/dtype runtime, and purification (K seeded trajectories from one smoothing draw).

Imports: models (and the loose errors/paths).
"""
