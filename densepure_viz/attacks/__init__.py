"""Adversarial attacks on the bare classifier or through the purifier (PGD/FGSM, EOT).

Imports: smoothing, engine, models.
"""
