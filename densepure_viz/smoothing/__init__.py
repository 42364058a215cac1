"""Randomized smoothing on any base classifier (Cohen et al. 2019): fixed-n CERTIFY and the anytime-valid
sequential CERTIFY.

Imports: engine, models.
"""
