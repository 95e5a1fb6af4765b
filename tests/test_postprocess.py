from __future__ import annotations

import io
import math

import numpy as np
import onnx
import pytest
import torch
from torch import Tensor, nn

from edge.model.session import SessionSettings, create_session
from export.model.postprocess import (
    MapSettings,
    anomaly_map,
    gaussian_kernel,
    group_distance_maps,
    image_score,
    token_map,
)

NO_BLUR = MapSettings(gaussian_ksize=1)  # a 1×1 kernel of 1: isolates the resizes


def _tokens(batch: int, grid: int, channels: int, seed: int) -> Tensor:
    return torch.randn(batch, grid * grid, channels, generator=torch.Generator().manual_seed(seed))


def test_gaussian_kernel_is_5x5_sigma4_and_sums_to_one() -> None:
    kernel = gaussian_kernel(5, 4.0)
    assert kernel.shape == (5, 5)
    assert kernel.sum().item() == pytest.approx(1.0, abs=1e-6)
    assert torch.allclose(kernel, kernel.T) and torch.allclose(kernel, kernel.flip(0))
    # One step from the centre along an axis: exp(-1 / (2σ²)); two steps: exp(-4 / (2σ²)).
    assert (kernel[2, 3] / kernel[2, 2]).item() == pytest.approx(math.exp(-1 / 32), rel=1e-6)
    assert (kernel[0, 0] / kernel[2, 2]).item() == pytest.approx(math.exp(-8 / 32), rel=1e-6)


def test_identical_encoder_and_decoder_groups_give_a_zero_map() -> None:
    groups = (_tokens(2, 7, 16, 0), _tokens(2, 7, 16, 1))
    maps = anomaly_map(groups, groups, (7, 7), (56, 56))
    assert maps.shape == (2, 256, 256)
    assert maps.abs().max().item() < 1e-6


def test_group_distance_is_one_minus_cosine_per_token() -> None:
    enc, dec = _tokens(1, 3, 8, 2), _tokens(1, 3, 8, 3)
    maps = group_distance_maps((enc,), (dec,), (3, 3))
    expected = 1 - torch.nn.functional.cosine_similarity(enc, dec, dim=-1).reshape(1, 1, 3, 3)
    assert torch.allclose(maps, expected, atol=1e-6)


def test_single_token_difference_peaks_at_its_position() -> None:
    enc = (_tokens(1, 8, 16, 4), _tokens(1, 8, 16, 5))
    dec = [group.clone() for group in enc]
    dec[0][0, 2 * 8 + 5] *= -1.0  # token at row 2, column 5 of group 0 only
    maps = anomaly_map(enc, dec, (8, 8), (64, 64), MapSettings(map_size_px=64))
    # align_corners=True puts token i on pixel i·63/7 = 9i: row 18, column 45.
    peak = divmod(int(maps[0].argmax()), 64)
    assert peak == (18, 45)
    assert maps[0, 18, 45].item() > 10 * maps[0, 60, 5].item()


def test_token_upsampling_aligns_corners_and_final_resize_uses_half_pixels() -> None:
    distances = torch.tensor([[0.0, 1.0, 2.0, 3.0]])  # 2×2 grid
    up = token_map(distances, (2, 2), (5, 5), MapSettings(map_size_px=5, gaussian_ksize=1))
    # align_corners=True: corners are the token values, row 0 goes 0, ¼, ½, ¾, 1.
    assert up[0, 0].tolist() == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0], abs=1e-6)
    assert [up[0, 0, 0].item(), up[0, 0, 4].item(), up[0, 4, 0].item(), up[0, 4, 4].item()] == [0, 1, 2, 3]
    # 2×2 → 4×4 with align_corners=True: rows 0 and 1 are (0, ⅓, ⅔, 1) and (⅔, 1, 4⁄3, 5⁄3).
    # 4×4 → 2×2 with half-pixel centres (align_corners=False): output (0, 0) sits at input (½, ½),
    # the mean of the top-left 2×2 block, (0 + ⅓ + ⅔ + 1) / 4 = ½; output (0, 1) = (⅔+1+4⁄3+5⁄3)/4
    # = 7⁄6. With align_corners=True it would be the corner values 0 and 1 instead.
    down = token_map(distances, (2, 2), (4, 4), MapSettings(map_size_px=2, gaussian_ksize=1))
    assert down[0, 0].tolist() == pytest.approx([0.5, 7 / 6], abs=1e-6)


def test_gaussian_pads_with_zeros() -> None:
    maps = token_map(torch.ones(1, 16), (4, 4), (32, 32), MapSettings(map_size_px=16))
    kernel = gaussian_kernel(5, 4.0)
    assert maps[0, 8, 8].item() == pytest.approx(1.0, abs=1e-6)
    assert maps[0, 0, 0].item() == pytest.approx(kernel[2:, 2:].sum().item(), abs=1e-6)


def test_group_maps_are_averaged_after_upsampling() -> None:
    enc = (_tokens(1, 4, 8, 6), _tokens(1, 4, 8, 7))
    dec = (_tokens(1, 4, 8, 8), _tokens(1, 4, 8, 9))
    both = anomaly_map(enc, dec, (4, 4), (16, 16), NO_BLUR)
    each = [anomaly_map((e,), (d,), (4, 4), (16, 16), NO_BLUR) for e, d in zip(enc, dec, strict=True)]
    assert torch.allclose(both, (each[0] + each[1]) / 2, atol=1e-6)


@pytest.mark.parametrize("ratio", [0.01, 0.1, 0.0])
def test_image_score_is_the_mean_of_the_top_values(ratio: float) -> None:
    maps = torch.rand(3, 40, 40, generator=torch.Generator().manual_seed(10))
    k = int(40 * 40 * ratio)
    flat = np.sort(maps.numpy().reshape(3, -1), axis=1)
    expected = flat[:, -k:].mean(axis=1) if k else flat[:, -1]
    assert np.allclose(image_score(maps, ratio).numpy(), expected, atol=1e-6)


def test_map_settings_reject_an_even_kernel() -> None:
    with pytest.raises(ValueError, match="gaussian_ksize"):
        MapSettings(gaussian_ksize=4)


def test_wrong_grid_names_the_fix() -> None:
    with pytest.raises(ValueError, match="grid_hw"):
        token_map(torch.zeros(1, 10), (3, 3), (30, 30))


class _PostprocessGraph(nn.Module):
    def __init__(self, settings: MapSettings) -> None:
        super().__init__()
        self.settings = settings

    def forward(self, e0: Tensor, e1: Tensor, d0: Tensor, d1: Tensor, dist: Tensor) -> tuple[Tensor, ...]:
        maps = anomaly_map((e0, e1), (d0, d1), (7, 7), (56, 56), self.settings)
        zero_shot = token_map(dist, (7, 7), (56, 56), self.settings)
        return maps, image_score(maps, self.settings.top_ratio), zero_shot


def test_postprocess_exports_to_onnx_and_onnxruntime_matches_torch() -> None:
    settings = MapSettings(map_size_px=64)
    inputs = tuple(_tokens(1, 7, 16, seed) for seed in range(4)) + (torch.rand(1, 49),)
    names = ["e0", "e1", "d0", "d1", "dist"]
    buffer = io.BytesIO()
    torch.onnx.export(
        _PostprocessGraph(settings),
        inputs,
        buffer,
        input_names=names,
        output_names=["anomaly_map", "pred_score", "inp_distance"],
        opset_version=17,
        dynamo=False,
    )
    model = onnx.load_from_string(buffer.getvalue())
    model.ir_version = 10  # onnxruntime 1.31 reads IR ≤ 13; onnx 1.23 writes 14 by default
    session = create_session(model.SerializeToString(), SessionSettings(providers=("cpu",), warmup_runs=0))
    got = session.run(None, {name: tensor.numpy() for name, tensor in zip(names, inputs, strict=True)})
    with torch.no_grad():
        want = _PostprocessGraph(settings)(*inputs)
    assert [tuple(g.shape) for g in got] == [(1, 64, 64), (1,), (1, 64, 64)]
    for ours, theirs in zip(got, want, strict=True):
        assert np.abs(ours - theirs.numpy()).max() < 1e-5
