"""The DensePure engine: noise level <-> diffusion step, seeded noise streams, the batched reverse process,
the majority vote, device/dtype runtime, purification (K seeded trajectories from one smoothing draw), and
batching (concurrent requests' network calls computed as one batch, each request keeping its bits).

Imports: models (and the loose errors/paths).
"""
