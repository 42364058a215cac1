"""The explorer's glossary: one short definition per symbol the views show (DensePure, Xiao et al. 2023;
randomized smoothing, Cohen et al. 2019), kept here so every view says the same thing."""

from __future__ import annotations

GLOSSARY: dict[str, str] = {
    "x, x_a": "x is the clean input image; x_a is x after an adversarial perturbation (the attacked input).",
    "sigma": "the standard deviation of the Gaussian smoothing noise delta, on [0, 1] pixels. Larger sigma "
             "hides larger perturbations and certifies larger radii, but destroys more of the image.",
    "x + delta, x_a + delta": "the input plus one draw of smoothing noise delta ~ N(0, sigma^2 I): where the "
                              "reverse diffusion starts (x_a + delta after an attack).",
    "t*": "the diffusion step whose noise level matches sigma: alpha_bar(t*) = 1 / (1 + (2 sigma)^2) (the 2 "
          "because pixels in [0, 1] are mapped to [-1, 1]).",
    "K": "the number of reverse trajectories (seeds) run from the same noisy input; each ends in a purified "
         "image and one vote.",
    "b": "the steps of the fast sampler: the UNet evaluations of one respaced reverse chain from t* to 0.",
    "vote, tie": "DensePure's label is the majority vote of the K purified images. A tie (two labels with the "
                 "same top count) goes to the smallest label.",
    "n0, n": "CERTIFY's draws: n0 noisy copies guess the top class, n fresh ones count its votes nA.",
    "p_lower": "a lower bound on the probability that a noisy copy is classified as the top class, holding with "
               "probability at least 1 - alpha (Clopper-Pearson from nA of n).",
    "alpha": "the probability that a certificate is wrong (the bound p_lower failed).",
    "radius": "the certified L2 radius sigma * Phi^-1(p_lower): every input within this distance of x gets the "
              "same label from the smoothed classifier.",
    "abstain": "when p_lower <= 1/2 the smoothed classifier certifies nothing and answers 'abstain' (it names "
               "the top class it counted).",
}


def glossary_markdown() -> str:
    """The glossary as a Markdown list (an asterisk, as in t*, is a symbol here, never emphasis)."""
    return "\n".join(f"- **{literal(term)}**: {literal(text)}" for term, text in GLOSSARY.items())


def literal(text: str) -> str:
    """`text` for Markdown with its asterisks shown as typed (t* is a step, not the start of italics)."""
    return text.replace("*", "\\*")
