import pytest
import torch

from globalconv import mixers
from globalconv.config import ModelConfig
from globalconv.models import Transformer
from globalconv.models.transformer import sinusoidal_positions


def model(mixer="global_conv", **kw):
    torch.manual_seed(0)
    cfg_kw = {k: kw.pop(k) for k in list(kw) if k in ModelConfig.model_fields}
    cfg = ModelConfig(mixer=mixer, d_model=16, n_layers=2, dropout=0.0, **cfg_kw)
    args = dict(max_len=20, num_outputs=5, vocab_size=11)
    args.update(kw)
    return Transformer(cfg, **args)


@pytest.mark.parametrize("mixer", ["attention", "global_conv"])
@pytest.mark.parametrize("norm", ["post", "pre"])
def test_sequence_head_pools_over_true_lengths(mixer, norm):
    m = model(mixer, norm=norm).eval()
    x = torch.randint(0, 11, (2, 20))
    lengths = torch.tensor([8, 20])
    y = m(x, lengths)
    assert y.shape == (2, 5)
    x2 = x.clone()
    x2[0, 8:] = 3  # padding content must not matter
    torch.testing.assert_close(m(x2, lengths)[0], y[0])
    torch.testing.assert_close(m(x[:1, :8])[0], y[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mixer", ["attention", "global_conv"])
def test_causal_language_model_does_not_peek(mixer):
    m = model(mixer, head="token", causal=True, num_outputs=11).eval()
    x = torch.randint(0, 11, (1, 20))
    y = m(x)
    assert y.shape == (1, 20, 11)
    x2 = x.clone()
    x2[0, 12:] = (x2[0, 12:] + 1) % 11
    torch.testing.assert_close(m(x2)[0, :12], y[0, :12])


def test_real_valued_inputs():
    m = model(vocab_size=None, input_dim=3)
    assert m(torch.randn(4, 20, 3)).shape == (4, 5)
    m1 = model(vocab_size=None, input_dim=1)
    assert m1(torch.randn(4, 20)).shape == (4, 5)
    with pytest.raises(ValueError, match="expected 3 input features, got 2"):
        m(torch.randn(4, 20, 2))


def test_positions_default_follows_the_mixer_and_is_configurable():
    assert model("attention").positions == "sinusoidal"
    assert model("global_conv").positions == "none"
    assert model("global_conv", positions="learned").positions == "learned"


def test_positions_default_asks_the_mixer_class_not_its_name():
    @mixers.register_mixer("_order_blind")
    class OrderBlind(mixers.get("fnet")):
        needs_positions = True

    try:
        assert model("_order_blind").positions == "sinusoidal"
    finally:
        mixers.base._REGISTRY.unregister("_order_blind")
    assert [name for name in mixers.available() if mixers.get(name).needs_positions] == [
        "attention"
    ]


def test_sinusoidal_positions_match_the_paper():
    pe = sinusoidal_positions(50, 8)
    t, i = 7, 1
    assert pe[t, 2 * i] == pytest.approx(torch.sin(torch.tensor(t / 10000 ** (2 * i / 8))).item())
    assert pe[t, 2 * i + 1] == pytest.approx(
        torch.cos(torch.tensor(t / 10000 ** (2 * i / 8))).item()
    )


def test_too_long_input_and_wrong_dtype_are_errors():
    m = model()
    with pytest.raises(ValueError, match="exceeds the model's max_len=20"):
        m(torch.randint(0, 11, (1, 30)))
    with pytest.raises(ValueError, match="integer ids"):
        m(torch.randn(1, 10))


def test_flops_count_mixers_ffn_and_head():
    m = model("global_conv")
    L = 20
    expected = sum(b.mixer.flops(L) + 4 * L * 16 * 64 for b in m.blocks) + 2 * 16 * 5
    assert m.flops(L) == expected


def test_cross_attention_block_uses_memory():
    from globalconv import mixers
    from globalconv.models import Block, CrossAttention, FeedForward

    block = Block(
        mixers.build("global_conv", d_model=16, max_len=10, causal=True),
        FeedForward(16, 32, 0.0, "relu"),
        dropout=0.0,
        norm="pre",
        cross_attention=CrossAttention(16, 4),
    )
    x, memory = torch.randn(2, 10, 16), torch.randn(2, 7, 16)
    y = block(x, memory=memory, memory_lengths=torch.tensor([7, 3]))
    memory2 = memory.clone()
    memory2[1, 3:] = 100.0
    torch.testing.assert_close(
        block(x, memory=memory2, memory_lengths=torch.tensor([7, 3]))[1], y[1]
    )
    with pytest.raises(ValueError, match="needs the encoder memory"):
        block(x)


def test_token_embeddings_have_unit_scale_like_the_positions():
    m = model("attention")
    x = m.embed_inputs(torch.arange(11)[None]) - m.pos_table[:11]
    assert 0.5 < x.std().item() < 2.0


def test_encoder_decoder_embeddings_have_the_same_scale():
    from globalconv.models.encoder_decoder import Embedding

    emb = Embedding(ModelConfig(mixer="attention", d_model=16, dropout=0.0), 11, 20)
    x = emb(torch.arange(11)[None]) - emb.pos_table[:11]
    assert 0.5 < x.std().item() < 2.0
