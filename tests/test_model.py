"""The INP-Former head (layers, model, losses) on a tiny deterministic frozen encoder."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from export.model.base import EncoderSpec, FrozenEncoder
from export.model.inp_former import INPFormer
from export.model.layers import AggregationBlock, PrototypeBlock
from export.model.loss import (
    coherence_distance,
    global_cosine_loss,
    inp_former_loss,
    soft_mining_loss,
    soft_mining_weights,
)

DIM = 32
HEADS = 4
TAPS = 8
STRIDE_PX = 8
SIZE_PX = 32
GRID = SIZE_PX // STRIDE_PX


class TinyEncoder(FrozenEncoder):
    """Fixed random conv patch embed followed by 8 fixed residual linear layers, each one a tap."""

    def __init__(self) -> None:
        super().__init__()
        self.spec = EncoderSpec(
            name="tiny",
            embed_dim=DIM,
            num_heads=HEADS,
            num_taps=TAPS,
            groups=((0, 1, 2, 3), (4, 5, 6, 7)),
            input_size_px=SIZE_PX,
            resize_px=SIZE_PX,
            stride_px=STRIDE_PX,
            mean_rgb=(0.5, 0.5, 0.5),
            std_rgb=(0.25, 0.25, 0.25),
        )
        generator = torch.Generator().manual_seed(1234)
        self.patch_embed = nn.Conv2d(3, DIM, kernel_size=STRIDE_PX, stride=STRIDE_PX)
        self.layers = nn.ModuleList(nn.Linear(DIM, DIM) for _ in range(TAPS))
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=generator) * 0.2)

    def taps(self, images: Tensor) -> list[Tensor]:
        mean = torch.tensor(self.spec.mean_rgb).view(1, 3, 1, 1)
        std = torch.tensor(self.spec.std_rgb).view(1, 3, 1, 1)
        x = self.patch_embed((images - mean) / std).flatten(2).transpose(1, 2)
        outputs = []
        for layer in self.layers:
            x = x + torch.tanh(layer(x))
            outputs.append(x)
        return outputs


@pytest.fixture()
def model() -> INPFormer:
    torch.manual_seed(0)
    return INPFormer(TinyEncoder())


@pytest.fixture()
def images() -> Tensor:
    return torch.rand(4, 3, SIZE_PX, SIZE_PX, generator=torch.Generator().manual_seed(7))


def test_reconstruction_fields_have_token_shapes(model: INPFormer, images: Tensor) -> None:
    rec = model(images)
    tokens = (4, GRID * GRID, DIM)
    assert [tuple(g.shape) for g in rec.encoder_groups] == [tokens, tokens]
    assert [tuple(g.shape) for g in rec.decoder_groups] == [tokens, tokens]
    assert tuple(rec.inps.shape) == (4, 6, DIM)
    assert tuple(rec.fused.shape) == tokens
    assert rec.grid_hw == (GRID, GRID)
    assert not any(g.requires_grad for g in rec.encoder_groups)
    assert all(g.requires_grad for g in rec.decoder_groups)


def test_decoder_groups_pair_reversed_layer_outputs(model: INPFormer, images: Tensor) -> None:
    features = model.encoder(images)
    rec = model.reconstruct(features)
    outputs = model.decode(features.fused, model.extract_inps(features.fused))
    # Group 0 (shallow) ↔ decoder layers 8,7,6,5; group 1 (deep) ↔ layers 4,3,2,1.
    torch.testing.assert_close(rec.decoder_groups[0], torch.stack(outputs[4:]).mean(0))
    torch.testing.assert_close(rec.decoder_groups[1], torch.stack(outputs[:4]).mean(0))
    torch.testing.assert_close(rec.encoder_groups[0], features.groups[0])


def test_state_dict_uses_timm_like_names(model: INPFormer) -> None:
    keys = set(model.trainable_state_dict())
    for key in (
        "decoder.0.attn.scale",
        "decoder.7.attn.kv.weight",
        "decoder.3.norm1.weight",
        "decoder.3.mlp.fc2.bias",
        "inp_extractor.attn.q.weight",
        "inp_extractor.attn.kv.weight",
        "inp_extractor.attn.proj.bias",
        "inp_extractor.norm2.weight",
        "inp_extractor.mlp.fc1.weight",
        "bottleneck.fc1.weight",
        "bottleneck.fc2.bias",
        "inp_tokens",
    ):
        assert key in keys, key
    assert "decoder.8.attn.scale" not in keys
    assert tuple(model.decoder[0].attn.scale.shape) == (HEADS, 1, 1)


def test_one_norm_serves_queries_and_keys_in_both_blocks(model: INPFormer) -> None:
    expected = {
        "norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias",
        "attn.q.weight", "attn.q.bias", "attn.kv.weight", "attn.kv.bias",
        "attn.proj.weight", "attn.proj.bias",
        "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias",
    }  # fmt: skip
    assert set(model.inp_extractor.state_dict()) == expected
    assert set(model.decoder[0].state_dict()) == expected | {"attn.scale"}
    assert model.decoder[0].norm1.eps == 1e-8
    assert model.inp_extractor.norm1.eps == 1e-8


def test_trainable_state_excludes_the_encoder(model: INPFormer) -> None:
    assert "encoder.patch_embed.weight" in model.state_dict()
    assert not any(k.startswith("encoder.") for k in model.trainable_state_dict())
    trainable = {id(p) for p in model.trainable_parameters()}
    assert trainable.isdisjoint(id(p) for p in model.encoder.parameters())
    assert len(trainable) == len(model.trainable_state_dict())


def test_init_follows_the_recipe(model: INPFormer) -> None:
    linears = [
        m for m in model.modules() if isinstance(m, nn.Linear) and m not in list(model.encoder.modules())
    ]
    weights = torch.cat([m.weight.flatten() for m in linears])
    assert weights.abs().max() <= 0.03
    assert 0.007 < weights.std() < 0.011
    assert all(torch.all(m.bias == 0) for m in linears)
    assert 0.8 < model.inp_tokens.std() < 1.2
    assert all(torch.all(layer.attn.scale == 1) for layer in model.decoder)


def test_trainable_state_round_trips(model: INPFormer) -> None:
    state = {k: v.clone() for k, v in model.trainable_state_dict().items()}
    torch.manual_seed(99)
    other = INPFormer(TinyEncoder())
    assert not torch.equal(other.inp_tokens, model.inp_tokens)
    other.load_trainable_state_dict(state)
    for key, value in other.trainable_state_dict().items():
        assert torch.equal(value, state[key]), key


def test_missing_key_names_the_key(model: INPFormer) -> None:
    state = dict(model.trainable_state_dict())
    del state["decoder.2.attn.scale"]
    state["encoder.patch_embed.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match=r"decoder\.2\.attn\.scale") as err:
        model.load_trainable_state_dict(state)
    assert "encoder.patch_embed.weight" in str(err.value)
    assert "trainable_state_dict" in str(err.value)


def test_wrong_shape_names_the_key(model: INPFormer) -> None:
    state = dict(model.trainable_state_dict())
    state["inp_tokens"] = torch.zeros(5, DIM)
    with pytest.raises(ValueError, match=r"inp_tokens has shape \(5, 32\)"):
        model.load_trainable_state_dict(state)


def test_decoder_attention_is_relu_cosine_not_softmax() -> None:
    torch.manual_seed(3)
    block = PrototypeBlock(dim=DIM, num_heads=HEADS)
    with torch.no_grad():
        block.attn.scale.fill_(3.0)
    x, inps = torch.randn(2, 10, DIM), torch.randn(2, 6, DIM)
    weights = block.attn.attention_weights(block.norm1(x), block.norm1(inps))
    assert tuple(weights.shape) == (2, HEADS, 10, 6)
    assert weights.min() == 0  # negatives are cut to exactly zero
    assert weights.max() > 1  # cosine × 3 can exceed 1: no softmax
    assert not torch.allclose(weights.sum(-1), torch.ones(2, HEADS, 10))
    q = F.normalize(block.attn.q(block.norm1(x)).view(2, 10, HEADS, -1).transpose(1, 2), dim=-1)
    k = F.normalize(block.attn.kv(block.norm1(inps))[..., :DIM].view(2, 6, HEADS, -1).transpose(1, 2), dim=-1)
    torch.testing.assert_close(weights, torch.relu(q @ k.transpose(-2, -1) * 3.0))


def test_decoder_layer_has_no_first_residual() -> None:
    torch.manual_seed(4)
    block = PrototypeBlock(dim=DIM, num_heads=HEADS)
    with torch.no_grad():
        for p in block.mlp.parameters():
            p.normal_()
        block.attn.proj.weight.zero_()
        block.attn.proj.bias.zero_()
    x, inps = torch.randn(2, 10, DIM), torch.randn(2, 6, DIM)
    expected = block.mlp(block.norm2(torch.zeros(DIM))).expand(2, 10, DIM)
    torch.testing.assert_close(block(x, inps), expected)


def test_extractor_block_keeps_its_residual() -> None:
    torch.manual_seed(5)
    block = AggregationBlock(dim=DIM, num_heads=HEADS)
    with torch.no_grad():
        block.attn.proj.weight.zero_()
        block.attn.proj.bias.zero_()
    queries, tokens = torch.randn(2, 6, DIM), torch.randn(2, 10, DIM)
    torch.testing.assert_close(block(queries, tokens), queries + block.mlp(block.norm2(queries)))


def _groups(seed: int) -> tuple[list[Tensor], list[Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    encoder = [torch.randn(3, 5, 4, generator=generator) for _ in range(2)]
    decoder = [e + 0.8 * torch.randn(3, 5, 4, generator=generator) for e in encoder]
    return encoder, decoder


def test_soft_mining_value_is_the_global_cosine_loss() -> None:
    encoder, decoder = _groups(11)
    value = soft_mining_loss(encoder, decoder, gamma=3.0)
    plain = torch.stack([global_cosine_loss(e, d) for e, d in zip(encoder, decoder, strict=True)]).mean()
    direct = torch.stack(
        [
            (1 - F.cosine_similarity(e.reshape(3, -1), d.reshape(3, -1), dim=1)).mean()
            for e, d in zip(encoder, decoder, strict=True)
        ]
    ).mean()
    torch.testing.assert_close(value, plain)
    torch.testing.assert_close(value, direct)


def test_soft_mining_gradient_is_reweighted_per_token() -> None:
    encoder, decoder = _groups(12)
    mine = [d.clone().requires_grad_() for d in decoder]
    soft_mining_loss(encoder, mine, gamma=3.0).backward()
    plain = [d.clone().requires_grad_() for d in decoder]
    torch.stack([global_cosine_loss(e, d) for e, d in zip(encoder, plain, strict=True)]).mean().backward()
    for e, d, m, p in zip(encoder, decoder, mine, plain, strict=True):
        token_d = 1 - F.cosine_similarity(e, d, dim=-1)
        weight = (token_d / token_d.mean()) ** 3
        assert weight.max() > 2 * weight.min()  # the weights really differ between tokens
        torch.testing.assert_close(m.grad, p.grad * weight.unsqueeze(-1))
        torch.testing.assert_close(soft_mining_weights(e, d, gamma=3.0), weight.unsqueeze(-1))


def test_soft_mining_never_pushes_gradient_into_the_encoder_side() -> None:
    encoder, decoder = _groups(13)
    enc = [e.clone().requires_grad_() for e in encoder]
    soft_mining_loss(enc, [d.requires_grad_() for d in decoder]).backward()
    assert all(e.grad is None for e in enc)


def test_soft_mining_rejects_mismatched_groups() -> None:
    encoder, decoder = _groups(14)
    with pytest.raises(ValueError, match="1 decoder groups"):
        soft_mining_loss(encoder, decoder[:1])


def test_coherence_distance_matches_a_direct_computation() -> None:
    generator = torch.Generator().manual_seed(21)
    fused, inps = torch.randn(2, 7, DIM, generator=generator), torch.randn(2, 3, DIM, generator=generator)
    expected = torch.empty(2, 7)
    for b in range(2):
        for i in range(7):
            expected[b, i] = min(1 - F.cosine_similarity(fused[b, i], inps[b, m], dim=0) for m in range(3))
    torch.testing.assert_close(coherence_distance(fused, inps), expected)


def test_total_loss_weights_coherence(model: INPFormer, images: Tensor) -> None:
    terms = inp_former_loss(model(images), coherence_weight=0.5)
    torch.testing.assert_close(terms.total, terms.soft_mining + 0.5 * terms.coherence)


def test_short_training_lowers_the_loss(model: INPFormer, images: Tensor) -> None:
    features = model.encoder(images)  # frozen: cache once, as training does
    optimizer = torch.optim.Adam(model.trainable_parameters(), lr=1e-3)
    losses = []
    for _ in range(30):
        terms = inp_former_loss(model.reconstruct(features))
        optimizer.zero_grad()
        terms.total.backward()
        optimizer.step()
        losses.append(terms.total.item())
    assert losses[-1] < 0.8 * losses[0], losses
    assert model.encoder.patch_embed.weight.grad is None


def test_export_graph_maps_equal_the_evaluation_maps(model: INPFormer) -> None:
    from export.model.loss import coherence_distance
    from export.model.postprocess import MapSettings, anomaly_map, image_score, token_map
    from export.onnx_export import ExportGraph

    settings = MapSettings(map_size_px=32)
    generator = torch.Generator().manual_seed(5)
    frame = torch.randint(0, 256, (1, 32, 32, 3), dtype=torch.uint8, generator=generator)
    with torch.no_grad():
        graph_map, graph_score, features, graph_inp = ExportGraph(model, (32, 32), settings)(frame)
        rec = model(frame.permute(0, 3, 1, 2).float() / 255.0)
        reference = anomaly_map(rec.encoder_groups, rec.decoder_groups, rec.grid_hw, (32, 32), settings)
        inp_reference = token_map(coherence_distance(rec.fused, rec.inps), rec.grid_hw, (32, 32), settings)
    torch.testing.assert_close(graph_map, reference, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(graph_score, image_score(reference, settings.top_ratio), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(graph_inp, inp_reference, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(features, rec.fused)
