"""FLOP counting and MFU of bench.speed (issue 23) against closed forms.

A convolution of C_in -> C_out channels with a k x k kernel costs 2 C_in k^2 FLOPs per output value (one
multiply-add per weight), a linear layer 2 * in * out per row, and attention 2 L^2 d for QK^T plus 2 L^2 d for
the weighted sum of values, for L tokens of width d. bench.speed counts with torch's FlopCounterMode; here the
same numbers come from the layer shapes, read by forward hooks.
"""

import pytest
import torch
from diffusers.models.attention_processor import Attention

from bench.speed import flops_per_call, mfu_cell, peak_for_name, unet_flops


def _shape_flops(module: torch.nn.Module, run) -> int:
    """FLOPs of run() from the closed forms above, summed over every conv, linear and attention call."""
    total = []

    def hook(layer, inputs, output):
        if isinstance(layer, torch.nn.Conv2d):
            total.append(2 * output.numel() * layer.in_channels // layer.groups * layer.kernel_size[0] * layer.kernel_size[1])
        elif isinstance(layer, torch.nn.Linear):
            total.append(2 * output.numel() * layer.in_features)
        elif isinstance(layer, Attention):
            batch, length = len(inputs[0]), inputs[0].shape[2] * inputs[0].shape[3]  # (B, C, H, W): H W tokens
            total.append(2 * 2 * batch * length**2 * layer.inner_dim)

    handles = [m.register_forward_hook(hook) for m in module.modules()
               if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear, Attention))]
    try:
        with torch.inference_mode():
            run()
    finally:
        for h in handles:
            h.remove()
    return sum(total)


def test_a_small_net_counts_its_closed_form():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Flatten(), torch.nn.Linear(8 * 16 * 16, 10))
    x = torch.zeros(5, 3, 16, 16)
    expected = 5 * (2 * 8 * 16 * 16 * 3 * 3 * 3 + 2 * 8 * 16 * 16 * 10)
    assert flops_per_call(lambda: net(x)) == expected == _shape_flops(net, lambda: net(x))


def test_digits_unet_flops_are_its_layers_and_linear_in_batch(digits_models):
    one = unet_flops(digits_models, 1)
    x = torch.zeros(3, digits_models.channels, digits_models.image_size, digits_models.image_size)
    assert one > 0 and unet_flops(digits_models, 3) == 3 * one
    assert one * 3 == _shape_flops(digits_models.unet, lambda: digits_models.unet(x, 0))


@pytest.mark.parametrize(("gpu", "peak"), [("NVIDIA H200", 989.0), ("NVIDIA H100 80GB HBM3", 989.0),
                                           ("NVIDIA H100 PCIe", 756.0), ("NVIDIA A100-SXM4-80GB", 312.0),
                                           ("NVIDIA L4", 121.0), ("NVIDIA A10", 125.0), ("NVIDIA A10G", None),
                                           ("Tesla T4", 65.0), ("NVIDIA GeForce RTX 3090", None)])
def test_peak_by_gpu_name(gpu, peak):
    assert peak_for_name(gpu) == peak


def test_mfu_is_the_share_of_the_peak():
    assert mfu_cell(247.25e12, 989.0) == "25.0%"
    assert mfu_cell(1e12, None) == "n/a"
