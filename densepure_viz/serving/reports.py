"""What a run reports: the JSON objects of `purify`, `certify` and `attack`, shared by the CLI and the app.

These are contracts (scripts parse them): `purify --json` has label, votes, per_seed, t_star; `certify
--json` has label, radius, p_lower, count, n, alpha, sigma, t_star; the app's JSON panels and API
endpoints return the same objects, extended with what only the app knows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from densepure_viz.engine.votes import tied_labels

if TYPE_CHECKING:  # annotations only: building a report needs none of these modules' code but the tie rule
    from densepure_viz.attacks.pgd import AttackConfig, AttackResult
    from densepure_viz.smoothing.certify import CertifyResult
    from densepure_viz.models.registry import DensePureModels
    from densepure_viz.engine.purify import PurifyConfig, PurifyResult
    from densepure_viz.smoothing.sequential import SequentialResult


def purify_json(result: PurifyResult, cfg: PurifyConfig, seed: int, models: DensePureModels) -> dict:
    """The purify command's JSON object (contract: label, votes, per_seed, t_star, tie)."""
    return {
        "label": result.label,
        "label_name": models.labels[result.label],
        "tie": len(tied_labels(result.votes)) > 1,  # the vote is a tie, broken towards the smallest label
        "votes": {str(k): v for k, v in sorted(result.votes.items())},
        "per_seed": result.per_seed,
        "t_star": result.t_star,
        "timesteps": result.timesteps,
        "input_label": result.input_label,
        "noisy_label": result.noisy_label,
        "one_shot_label": result.one_shot_label,
        "sigma": cfg.sigma,
        "seeds": cfg.seeds,
        "sampler": cfg.sampler,
        "steps": cfg.steps,
        "seed": seed,
        "model": models.name,
    }


def certificate_json(result: CertifyResult, cfg: PurifyConfig | None, t_star: int, seconds: float) -> dict:
    """The certify command's JSON object (contract: label, top_class, radius, p_lower, count, n, alpha, sigma, t_star).

    cfg is the purifier that was smoothed; None for the bare classifier (no seeds, sampler or steps).
    """
    return {
        "label": result.label,
        "top_class": result.guess,  # cA, the class the count is of (also when abstaining)
        "radius": result.radius,
        "p_lower": result.p_lower,
        "count": result.count,
        "n": result.n,
        "n0": result.n0,
        "alpha": result.alpha,
        "sigma": result.sigma,
        "t_star": t_star,
        "guess": result.guess,
        "counts": result.counts,
        "seeds": cfg.seeds if cfg else None,
        "sampler": cfg.sampler if cfg else None,
        "steps": cfg.steps if cfg else None,
        "time": round(seconds, 3),
    }


def sequential_json(result: SequentialResult, cfg: PurifyConfig, t_star: int, seconds: float) -> dict:
    """`certify --sequential --json`: the decision at the target radius, the draws it took, and the bounds at stop.

    Every number is anytime-valid: `radius` is the radius the confidence sequence supports when it stopped.
    """
    return {
        "label": result.label,
        "top_class": result.top_class,
        "decision": result.decision,
        "draws_used": result.draws_used,
        "radius": result.radius,
        "target_radius": result.target_radius,
        "p_lower": result.p_lower,
        "p_upper": result.p_upper,
        "count": result.counts[result.top_class],
        "counts": result.counts,
        "n": result.n,
        "n0": result.n0,
        "alpha": result.alpha,
        "sigma": result.sigma,
        "t_star": t_star,
        "seeds": cfg.seeds,
        "sampler": cfg.sampler,
        "steps": cfg.steps,
        "time": round(seconds, 3),
    }


def attack_json(result: AttackResult, cfg: AttackConfig, label: int, label_source: str) -> dict:
    """The attack's outcome and settings (the attack command's JSON without its file and model keys)."""
    out = {
        "clean_label": result.clean_label,
        "adversarial_label": result.adversarial_label,
        "success": result.success,
        "target_label_rate": result.target_label_rate,
        "linf": result.linf,
        "l2": result.l2,
        "threat": cfg.threat,
        "norm": cfg.norm,
        "eps": cfg.eps,
        "steps": cfg.steps,
        "step_size": cfg.alpha,
        "target": cfg.target,
        "label": label,
        "label_source": label_source,
        "seed": cfg.seed,
    }
    if cfg.threat == "adaptive":
        out.update(sigma=cfg.sigma, eot_samples=cfg.eot_samples, adaptive_sampler=cfg.adaptive_sampler,
                   adaptive_steps=cfg.adaptive_steps)
    return out
