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


VIEW_STEPS: dict[str, str] = {  # each view's opening line: the step of the method it shows
    "purify": "**Step 1 - purify.** Pick, draw or upload a digit, optionally attack it, then watch DensePure: "
              "add Gaussian noise (sigma), read the noisy image as a diffusion sample at step t\\*, run K seeded "
              "reverse trajectories back to a clean image, classify each and take the majority vote.",
    "certify": "**Step 2 - certify.** Randomized smoothing turns DensePure into a classifier with a guarantee: draw "
               "n0 noisy copies to guess the top class, n more to bound its probability p_lower from below "
               "(Clopper-Pearson, confidence 1 - alpha), and certify the L2 radius sigma * Phi^-1(p_lower). Here the "
               "bound is anytime-valid: it holds at every number of draws at once, so the radius shown is a "
               "certificate at every moment, and a run can stop as soon as it decides.",
    "regions": "**Step 3 - why it works.** In a 2D world with a known data distribution everything is exact. The "
               "reverse process from x~ samples the posterior p(x0 | x~); the label of its **highest-density point** "
               "(map c) is robust on whole regions, often far larger than the ball randomized smoothing certifies. "
               "Click the map to move x0 or x_a.",
    "density": "**Step 4 - the same story on images.** DensePure's reverse process samples p(x0 | x + delta). For "
               "the finite training set the exact posterior puts weight exp(-|x~ - x_i|^2 / (2 s^2)) on each training "
               "image: its **highest-density point** is the training image an ideal diffusion model would return, "
               "and its label mass is what the majority vote estimates. Uses the Purify view's image and attack, "
               "with the settings below.",
}


def glossary_markdown() -> str:
    """The glossary as a Markdown list (an asterisk, as in t*, is a symbol here, never emphasis)."""
    return "\n".join(f"- **{literal(term)}**: {literal(text)}" for term, text in GLOSSARY.items())


def literal(text: str) -> str:
    """`text` for Markdown with its asterisks shown as typed (t* is a step, not the start of italics)."""
    return text.replace("*", "\\*")
