"""Traced networks (models.tracing) give the eager bits, and only where they can."""

from __future__ import annotations

import pytest
import torch

from densepure_viz.models import tracing
from densepure_viz.models.registry import custom_spec, load_models
from densepure_viz.models.tracing import run_network


@pytest.fixture(scope="module")
def digits():
    """The shipped digits pair, a private copy (its traces are its own)."""
    return load_models("digits", device="cpu")


def _inputs(models, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, models.channels, models.image_size, models.image_size, generator=gen)
    return x, torch.randint(1000, (n,), generator=gen)


@pytest.mark.parametrize("n", [1, 8, 63, 64, 80])
def test_a_traced_call_returns_the_eager_bits(digits, n):
    """Both networks, on either side of diffusers' 64-image branch: traced or not, the same tensor to the bit."""
    with torch.inference_mode():
        run_network(digits.unet, "unet", *_inputs(digits, n, seed=0))  # the shape's first call: eager, checks the traces
        run_network(digits.classifier, "classifier", _inputs(digits, n, seed=0)[0])
        x, t = _inputs(digits, n, seed=n)  # other values, the same shape: traced
        traced_eps = run_network(digits.unet, "unet", x, t)
        traced_logits = run_network(digits.classifier, "classifier", x)
        key = next(k for k in tracing._TRACES[digits.unet].chosen if k[0][0][0] == n)
        assert tracing._TRACES[digits.unet].chosen[key] is not None, "the UNet call was not traced"
        assert torch.equal(traced_eps, digits.unet(x, t).sample)
        assert torch.equal(traced_logits, digits.classifier(x))


@pytest.mark.parametrize("n", [1, 8])
def test_the_cifar10_presets_architecture_traces_bit_for_bit(rgb_models, n):
    """google/ddpm-cifar10-32's UNet (attention blocks, 32x32 RGB) and timm's CIFAR ResNet-18, as replicas."""
    with torch.inference_mode():
        for seed in (0, 1):  # the shape's first call checks the traces; the second runs one
            x, t = _inputs(rgb_models, n, seed)
            eps, logits = run_network(rgb_models.unet, "unet", x, t), run_network(rgb_models.classifier, "classifier", x)
        assert torch.equal(eps, rgb_models.unet(x, t).sample) and torch.equal(logits, rgb_models.classifier(x))
    chosen = [v for k, v in tracing._TRACES[rgb_models.unet].chosen.items() if k[0][0][0] == n]
    assert chosen and chosen[0] is not None, "the UNet was not traced at this shape"


def test_the_64_image_branch_gets_a_trace_of_its_own(digits):
    """diffusers' upsampler makes its input contiguous from 64 images on: a trace made below 64 freezes the other
    path, so the shape check sends 64 and more to a second trace."""
    with torch.inference_mode():
        for n in (8, 64):
            run_network(digits.unet, "unet", *_inputs(digits, n, seed=0))
    state = tracing._TRACES[digits.unet]
    small = next(v for k, v in state.chosen.items() if k[0][0][0] == 8)
    large = next(v for k, v in state.chosen.items() if k[0][0][0] == 64)
    assert small is not None and large is not None and small is not large and len(state.traces) == 2


@pytest.fixture
def tiny(tiny_dirs):
    """A fresh copy of the tiny pair: no call has traced it yet."""
    return load_models(custom_spec(str(tiny_dirs[0]), str(tiny_dirs[1])), device="cpu")


def test_calls_with_gradients_run_eagerly_and_keep_their_graph(tiny):
    """An attack differentiates through the networks: its calls are not traced and its gradients flow."""
    x = torch.rand(2, tiny.channels, tiny.image_size, tiny.image_size, requires_grad=True)
    run_network(tiny.classifier, "classifier", x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert tiny.classifier not in tracing._TRACES


def test_a_watched_network_runs_its_python(tiny):
    """A forward hook (the tests' UNet call counters) sees every call: a network with hooks is not traced."""
    calls = []
    tiny.unet.register_forward_hook(lambda *_: calls.append(1))
    with torch.inference_mode():
        run_network(tiny.unet, "unet", torch.rand(2, tiny.channels, tiny.image_size, tiny.image_size), torch.full((2,), 5))
    assert calls == [1] and tiny.unet not in tracing._TRACES


def test_tracing_can_be_turned_off(tiny, monkeypatch):
    monkeypatch.setenv(tracing.TRACE_ENV, "0")
    x, t = torch.rand(3, tiny.channels, tiny.image_size, tiny.image_size), torch.full((3,), 5)
    with torch.inference_mode():
        out = run_network(tiny.unet, "unet", x, t)
        assert tiny.unet not in tracing._TRACES and torch.equal(out, tiny.unet(x, t).sample)
    monkeypatch.setenv(tracing.TRACE_ENV, "1")
    with torch.inference_mode():
        assert torch.equal(run_network(tiny.unet, "unet", x, t), out) and tiny.unet in tracing._TRACES


def test_other_architectures_run_eagerly():
    """A network outside TRACEABLE (its forward may branch on values, which a trace would freeze) is never traced."""

    class ValueBranch(torch.nn.Module):
        def forward(self, x):
            return x * 2 if x.sum() > 0 else x * 3

    net = ValueBranch()
    with torch.inference_mode():
        assert torch.equal(run_network(net, "classifier", torch.ones(2, 1)), torch.full((2, 1), 2.0))
        assert torch.equal(run_network(net, "classifier", -torch.ones(2, 1)), torch.full((2, 1), -3.0))
    assert net not in tracing._TRACES
