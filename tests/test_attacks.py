"""Attacks: PGD/FGSM geometry against closed forms, loss ascent on random models, EOT gradients through the purifier."""

import json

import pytest
import torch

from densepure_viz.attacks.pgd import (
    AttackConfig,
    AttackProgress,
    AttackResult,
    attack,
    attack_loss,
    attack_stream,
    fgsm,
    final_iterate,
    goal_loss,
    max_l2_eps,
    pgd_steps,
    project,
)
from densepure_viz.serving.cli import main
from densepure_viz.models.images import to_tensor


@pytest.fixture()
def batch():
    """Four random 1x8x8 images in [0, 1]."""
    return torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))


def _classifier_loss(models, labels, targeted=False):
    return lambda x, step: goal_loss(models.logits(x), labels, targeted)


def _perturbation_norm(delta, norm):
    flat = delta.flatten(1)
    return flat.abs().amax(1) if norm == "linf" else flat.norm(dim=1)


def test_fgsm_matches_the_closed_form_of_a_linear_loss():
    """For loss w.x the steepest L-inf step is eps*sign(w), the L2 step eps*w/||w|| (inside the box)."""
    x = torch.full((2, 1, 4, 4), 0.5)
    w = torch.randn(2, 1, 4, 4, generator=torch.Generator().manual_seed(3))
    loss = lambda z, step: (w * z).flatten(1).sum(1)  # noqa: E731
    torch.testing.assert_close(fgsm(loss, x, "linf", 0.1), x + 0.1 * w.sign())
    unit = w / w.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    torch.testing.assert_close(fgsm(loss, x, "l2", 0.3), x + 0.3 * unit)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_fgsm_with_eps_zero_changes_nothing(tiny_models, batch, norm):
    labels = torch.tensor([0, 1, 2, 3])
    assert torch.equal(fgsm(_classifier_loss(tiny_models, labels), batch, norm, 0.0), batch)


@pytest.mark.slow
@pytest.mark.parametrize("norm,eps", [("linf", 0.2), ("l2", 1.5)])
def test_pgd_raises_the_loss_and_stays_in_the_ball_and_box(tiny_models, batch, norm, eps):
    labels = tiny_models.predict(batch)  # untargeted from the model's own answer: room to climb
    loss_fn = _classifier_loss(tiny_models, labels)
    x_adv = final_iterate(batch, pgd_steps(loss_fn, batch, norm, eps, steps=10, step_size=2.5 * eps / 10,
                                           generator=torch.Generator().manual_seed(0)))
    with torch.no_grad():
        before, after = loss_fn(batch, 0), loss_fn(x_adv, 0)
    assert (after > before).all()
    assert (_perturbation_norm(x_adv - batch, norm) <= eps + 1e-5).all()
    assert x_adv.min() >= 0 and x_adv.max() <= 1


def test_l2_projection_rescales_onto_the_sphere_and_leaves_the_inside_alone():
    x = torch.full((2, 1, 2, 2), 0.5)
    far = x + torch.tensor([0.4, 0.0, 0.0, 0.3]).view(1, 1, 2, 2)  # ||delta|| = 0.5
    projected = project(x, far, "l2", 0.25)
    torch.testing.assert_close((projected - x).flatten(1).norm(dim=1), torch.full((2,), 0.25))
    torch.testing.assert_close(project(x, far, "l2", 1.0), far)


def test_targeted_pgd_moves_toward_the_target(tiny_models, batch):
    target = torch.full((4,), 7)
    ce = lambda z: torch.nn.functional.cross_entropy(tiny_models.logits(z), target, reduction="none")  # noqa: E731
    x_adv = final_iterate(batch, pgd_steps(_classifier_loss(tiny_models, target, targeted=True), batch, "linf", 0.3,
                                           10, 0.075, generator=torch.Generator().manual_seed(0)))
    with torch.no_grad():
        assert (ce(x_adv) < ce(batch)).all()


def test_adaptive_loss_has_finite_nonzero_gradients_matching_finite_differences(tiny_models, batch):
    """The EOT loss differentiates through noise -> UNet -> x0 -> classifier, and the gradient is the true one."""
    cfg = AttackConfig(threat="adaptive", eot_samples=3, sigma=0.25, adaptive_sampler="fast", adaptive_steps=2)
    loss_fn = attack_loss(tiny_models, torch.tensor([0, 1]), cfg)
    x = batch[:2].clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(loss_fn(x, 0).sum(), x)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    direction = torch.randn(x.shape, generator=torch.Generator().manual_seed(5))
    h = 1e-3
    with torch.no_grad():  # the same step index draws the same noise, so the loss is a fixed function of x
        numeric = (loss_fn(x + h * direction, 0) - loss_fn(x - h * direction, 0)).sum() / (2 * h)
    assert float(numeric) == pytest.approx(float((grad * direction).sum()), rel=0.02)


def test_attack_leaves_model_parameters_as_they_were(tiny_models, batch):
    flags = [p.requires_grad for p in tiny_models.unet.parameters()]
    attack(tiny_models, batch[0], 1, AttackConfig(threat="adaptive", steps=2, eot_samples=2))
    assert [p.requires_grad for p in tiny_models.unet.parameters()] == flags
    assert all(p.grad is None for p in tiny_models.unet.parameters())
    assert all(p.grad is None for p in tiny_models.classifier.parameters())


@pytest.mark.parametrize("threat", ["classifier", "adaptive"])
def test_attack_reproduces_with_its_seed(tiny_models, batch, threat):
    cfg = AttackConfig(threat=threat, eps=0.2, steps=3, eot_samples=2, seed=4)
    a, b = attack(tiny_models, batch[0], 2, cfg), attack(tiny_models, batch[0], 2, cfg)
    assert torch.equal(a.adversarial, b.adversarial) and a.target_label_rate == b.target_label_rate
    c = attack(tiny_models, batch[0], 2, AttackConfig(threat=threat, eps=0.2, steps=3, eot_samples=2, seed=5))
    assert not torch.equal(a.adversarial, c.adversarial)


def test_attack_stream_reports_every_step_and_a_consistent_result(tiny_models, batch):
    cfg = AttackConfig(norm="l2", eps=1.0, steps=4)
    items = list(attack_stream(tiny_models, batch[0], 3, cfg))
    assert [i.step for i in items[:-1]] == [1, 2, 3, 4] and all(isinstance(i, AttackProgress) for i in items[:-1])
    result = items[-1]
    assert isinstance(result, AttackResult)
    assert result.l2 <= 1.0 + 1e-5 and result.linf <= result.l2 + 1e-6
    assert result.clean_label == int(tiny_models.predict(batch[:1])[0])
    assert result.success == (result.adversarial_label != 3)  # classifier threat: its own target is the bare model
    assert result.target_label_rate == float(result.success)


def test_inference_mode_callers_still_get_gradients(tiny_models, batch):
    with torch.inference_mode():
        result = attack(tiny_models, batch[0], 0, AttackConfig(eps=0.1, steps=2))
    assert result.linf > 0


@pytest.mark.parametrize("kwargs", [
    {"eps": -0.1}, {"eps": 1.5}, {"steps": 0}, {"norm": "l1"}, {"threat": "blackbox"}, {"eot_samples": 0},
    {"sigma": 0.0}, {"step_size": 0.0}, {"target": -1}, {"adaptive_sampler": "full"},
])
def test_config_rejects_bad_values(kwargs):
    with pytest.raises(ValueError):
        AttackConfig(**kwargs)


def test_attack_rejects_inputs_that_do_not_fit_the_model(tiny_models, batch):
    with pytest.raises(ValueError, match="shape"):
        attack(tiny_models, torch.rand(3, 8, 8), 0, AttackConfig())
    with pytest.raises(ValueError, match="own label"):
        attack(tiny_models, batch[0], 2, AttackConfig(target=2))
    with pytest.raises(ValueError, match="l2 eps"):
        attack(tiny_models, batch[0], 2, AttackConfig(norm="l2", eps=max_l2_eps((1, 8, 8)) + 1))


def test_attack_cli_writes_the_image_and_one_json_object(tiny_dirs, tmp_path, capsys):
    from densepure_viz.models.images import save_image

    diffusion, classifier = tiny_dirs
    source, out = tmp_path / "x.png", tmp_path / "adv.png"
    save_image(torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(2)), source)
    argv = ["attack", str(source), "--diffusion", str(diffusion), "--classifier", str(classifier), "--device", "cpu",
            "--eps", "0.1", "--norm", "linf", "--threat", "classifier", "--steps", "3", "--label", "4",
            "--out", str(out), "--json"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    keys = ("clean_label", "adversarial_label", "success", "target_label_rate", "linf", "l2", "out", "threat", "norm", "eps")
    assert set(keys) <= set(result)
    written = to_tensor(out, 1, 8)
    clean = to_tensor(source, 1, 8)
    assert (written - clean).abs().max() <= 0.1 + 1 / 255  # the PNG stores the perturbation to 8 bits
    assert main(argv[:-3] + ["--out", str(out), "--eps", "2"]) == 2  # a linf eps above 1 is a user error


@pytest.mark.slow
def test_digits_classifier_falls_to_pgd(digits_models, digits_split):
    """End-to-end on the shipped models: L-inf PGD at eps 0.25 flips the bare classifier on most images."""
    images, labels = digits_split.test_images[:8], digits_split.test_labels[:8]
    cfg = AttackConfig(norm="linf", eps=0.25, steps=10)
    results = [attack(digits_models, x, int(y), cfg) for x, y in zip(images, labels)]
    assert sum(r.success for r in results) >= 6
    assert all(r.linf <= 0.25 + 1e-5 for r in results)
