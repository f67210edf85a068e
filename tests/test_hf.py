"""globalconv.hf: attention swapped out of tiny randomly initialised transformers models (built
here, nothing downloaded), saving and loading, fine-tuning, and our Transformer in Hub format."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest
import torch
from torch import nn

transformers = pytest.importorskip("transformers")
pytest.importorskip("huggingface_hub")

from globalconv import hf, tasks  # noqa: E402
from globalconv.cli import main  # noqa: E402
from globalconv.config import ModelConfig  # noqa: E402
from globalconv.hf.finetune import finetune  # noqa: E402
from globalconv.models import Transformer  # noqa: E402
from globalconv.models.hub import HubTransformer  # noqa: E402

VOCAB, L = 64, 16
transformers.utils.logging.disable_progress_bar()
transformers.utils.logging.set_verbosity_error()


def tiny(kind: str, vocab_size: int = VOCAB, **extra) -> nn.Module:
    torch.manual_seed(0)
    if kind == "gpt2":
        config = transformers.GPT2Config(
            vocab_size=vocab_size, n_positions=32, n_embd=32, n_layer=2, n_head=4, **extra
        )
        model = transformers.GPT2LMHeadModel(config)
    elif kind == "llama":
        config = transformers.LlamaConfig(
            vocab_size=vocab_size,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,  # grouped-query: two query heads per value head
            max_position_embeddings=32,
            **extra,
        )
        model = transformers.LlamaForCausalLM(config)
    else:
        config = transformers.BertConfig(
            vocab_size=vocab_size,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            max_position_embeddings=32,
            **extra,
        )
        model = transformers.BertForMaskedLM(config)
    return model.eval()


KINDS = ["gpt2", "llama", "bert"]
ATTENTION = {"gpt2": "GPT2Attention", "llama": "LlamaAttention", "bert": "BertSelfAttention"}


def ids(batch: int = 2, length: int = L, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, length), generator=torch.Generator().manual_seed(seed))


def attention_names(model: nn.Module) -> set[str]:
    return {n for n, m in model.named_modules() if type(m).__name__ in ATTENTION.values()}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("projections", ["keep", "drop"])
def test_replacement_report_shapes_and_kept_weights(kind, projections):
    model = tiny(kind)
    original = copy.deepcopy(model)
    x = ids()
    report = hf.replace_attention(model, "global_conv", projections=projections)
    assert [r.layer for r in report] == [0, 1]
    assert {r.module for r in report} == attention_names(original)
    assert {r.old for r in report} == {ATTENTION[kind]} and {r.new for r in report} == {
        "global_conv"
    }
    for row in report:
        old = original.get_submodule(row.module)
        new = model.get_submodule(row.module)
        assert isinstance(new, hf.MixerAttention)
        extra = 0
        if kind == "bert" and projections == "drop":  # BERT's output projection goes too
            dense = original.get_submodule(row.module.replace(".self", ".output.dense"))
            extra = sum(p.numel() for p in dense.parameters())
        assert row.params_before == sum(p.numel() for p in old.parameters()) + extra
        assert row.params_after == sum(p.numel() for p in new.parameters())
    assert "params before" in str(report)
    # every weight outside the replaced modules is kept, unchanged
    swapped = tuple(r.module + "." for r in report)
    kept = {k: v for k, v in original.state_dict().items() if not k.startswith(swapped)}
    if kind == "bert" and projections == "drop":
        kept = {k: v for k, v in kept.items() if ".attention.output.dense." not in k}
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in kept.items())
    if projections == "keep" and kind == "llama":  # value and output projections kept as is
        assert torch.equal(
            state["model.layers.0.self_attn.value.weight"],
            original.state_dict()["model.layers.0.self_attn.v_proj.weight"],
        )
    out = model(x, attention_mask=torch.ones_like(x)).logits
    assert out.shape == original(x).logits.shape == (2, L, VOCAB)
    assert model.config.use_cache is False


@pytest.mark.parametrize("kind", KINDS)
def test_padding_invariance_right_padding(kind):
    model = tiny(kind)
    hf.replace_attention(model, "global_conv")
    x = ids()
    mask = torch.ones_like(x)
    mask[1, 10:] = 0
    batch = model(x, attention_mask=mask).logits
    alone = model(x[1:, :10]).logits
    torch.testing.assert_close(batch[1, :10], alone[0], atol=1e-5, rtol=1e-5)
    other = x.clone()
    other[1, 10:] = (x[1, 10:] + 1) % VOCAB  # what sits in the padding changes nothing
    torch.testing.assert_close(model(other, attention_mask=mask).logits[1, :10], batch[1, :10])


def test_padding_invariance_left_padding_and_holes():
    model = tiny("llama")  # no absolute positions outside attention: left padding is exact
    hf.replace_attention(model, "global_conv", kernel="implicit")
    x = ids()
    mask = torch.ones_like(x)
    mask[0, :5] = 0  # left padding
    mask[1, 3:6] = 0  # a hole
    batch = model(x, attention_mask=mask).logits
    torch.testing.assert_close(batch[0, 5:], model(x[:1, 5:]).logits[0], atol=1e-5, rtol=1e-5)
    kept = torch.cat([x[1, :3], x[1, 6:]])[None]
    rows = torch.cat([batch[1, :3], batch[1, 6:]])
    torch.testing.assert_close(rows, model(kept).logits[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_decoders_stay_causal(kind):
    model = tiny(kind)
    hf.replace_attention(model, "global_conv")
    x = ids()
    changed = x.clone()
    changed[:, 9:] = (x[:, 9:] + 7) % VOCAB
    a, b = model(x).logits, model(changed).logits
    torch.testing.assert_close(a[:, :9], b[:, :9])
    assert not torch.allclose(a[:, 9:], b[:, 9:])
    assert hf.replace.is_causal(model) and not hf.replace.is_causal(tiny("bert"))


def test_bert_is_bidirectional_and_cross_attention_is_untouched():
    model = tiny("bert")
    hf.replace_attention(model, "global_conv")
    x = ids()
    changed = x.clone()
    changed[:, -1] = (x[:, -1] + 1) % VOCAB
    assert not torch.allclose(model(x).logits[:, 0], model(changed).logits[:, 0])

    decoder = tiny("gpt2", add_cross_attention=True)
    report = hf.replace_attention(decoder, "global_conv")
    assert all(r.module.endswith(".attn") for r in report)
    assert type(decoder.transformer.h[0].crossattention).__name__ == "GPT2Attention"
    memory = torch.randn(2, 5, 32)
    out = decoder(x, encoder_hidden_states=memory).logits
    moved = decoder(x, encoder_hidden_states=memory + 1).logits
    assert out.shape == (2, L, VOCAB) and not torch.allclose(out, moved)


def test_some_layers_other_mixers_and_errors():
    model = tiny("gpt2")
    report = hf.replace_attention(model, "hyena", layers=[1])
    assert [r.layer for r in report] == [1]
    assert type(model.transformer.h[0].attn).__name__ == "GPT2Attention"
    with pytest.raises(ValueError, match="already replaced"):
        hf.replace_attention(model, "global_conv", layers=[1])
    with pytest.raises(ValueError, match="out of range"):
        hf.replace_attention(model, "global_conv", layers=[2])
    with pytest.raises(ValueError, match="no option"):
        hf.replace_attention(model, "global_conv", layers=[0], heads=2)
    with pytest.raises(ValueError, match="projections"):
        hf.replace_attention(model, "global_conv", projections="some")
    with pytest.raises(ValueError, match="cannot be causal"):
        hf.replace_attention(model, "fnet", layers=[0])
    hf.replace_attention(model, "global_conv", layers=[0], kernel="implicit")
    assert [s["mixer"] for s in model.config.globalconv_replacements] == ["hyena", "global_conv"]

    class Other(nn.Module):
        config = type("Config", (), {"model_type": "t5"})()

        @property
        def base_model(self):
            return self

    with pytest.raises(ValueError, match="supports model_type bert, gpt2, llama"):
        hf.replace_attention(Other())


def test_generate_recomputes_the_prefix():
    model = tiny("gpt2")
    hf.replace_attention(model, "global_conv")
    prompt = ids(1, 5)
    out = model.generate(
        prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=6, do_sample=False
    )
    expected = prompt
    for _ in range(6):  # greedy decoding by hand, the whole prefix each step
        step = model(expected).logits[:, -1].argmax(-1, keepdim=True)
        expected = torch.cat([expected, step], 1)
    assert torch.equal(out, expected)
    with pytest.raises(ValueError, match="use_cache=False"):
        model.generate(
            prompt,
            attention_mask=torch.ones_like(prompt),
            max_new_tokens=3,
            do_sample=False,
            use_cache=True,
        )


def test_generate_with_left_padding_matches_each_prompt_alone():
    model = tiny("llama")
    hf.replace_attention(model, "global_conv", kernel="implicit")
    prompts = ids(2, 6)
    mask = torch.ones_like(prompts)
    mask[1, :2] = 0  # the second prompt is 4 tokens, left padded
    out = model.generate(prompts, attention_mask=mask, max_new_tokens=4, do_sample=False)
    for row, start in ((0, 0), (1, 2)):
        alone = prompts[row : row + 1, start:]
        single = model.generate(
            alone, attention_mask=torch.ones_like(alone), max_new_tokens=4, do_sample=False
        )
        assert torch.equal(out[row, start:], single[0])


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_swapped_model_save_and_load(kind, tmp_path):
    model = tiny(kind)
    hf.replace_attention(model, "global_conv", layers=[0], kernel="implicit")
    hf.replace_attention(model, "gated_global_conv", layers=[1], projections="drop")
    with torch.no_grad():
        for p in model.parameters():  # not the initial values: the load must restore them
            p.add_(0.01 * torch.randn_like(p))
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    loaded = hf.from_pretrained(tmp_path)
    assert type(loaded) is type(model)
    x = ids()
    mask = torch.ones_like(x)
    mask[0, 12:] = 0
    torch.testing.assert_close(
        loaded(x, attention_mask=mask).logits, model(x, attention_mask=mask).logits
    )
    assert type(hf.load_model(tmp_path)) is type(model)
    twin = copy.deepcopy(model)  # a copy's layers read the copy's mask
    layers = [m for m in twin.modules() if isinstance(m, hf.MixerAttention)]
    assert all(m._padding[0] is twin.base_model._globalconv_padding for m in layers)
    plain = tmp_path / "plain"
    tiny(kind).save_pretrained(plain)
    assert attention_names(hf.load_model(plain))
    with pytest.raises(ValueError, match="no model swapped"):
        hf.from_pretrained(plain)


def test_transformer_hub_round_trip(tmp_path):
    cfg = ModelConfig(mixer="global_conv", d_model=16, n_layers=2, dropout=0.0)
    model = Transformer(cfg, max_len=32, num_outputs=5, vocab_size=20).eval()
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["cfg"]["mixer"] == "global_conv" and saved["max_len"] == 32
    assert (tmp_path / "model.safetensors").is_file()
    loaded = Transformer.from_pretrained(tmp_path)
    assert isinstance(loaded, Transformer) and loaded.cfg == cfg
    x = torch.randint(0, 20, (3, 32))
    lengths = torch.tensor([32, 20, 7])
    torch.testing.assert_close(loaded(x, lengths), model(x, lengths))
    loaded.save_pretrained(tmp_path / "again")  # a loaded model saves as it is
    assert json.loads((tmp_path / "again" / "config.json").read_text()) == saved
    direct = HubTransformer(cfg, max_len=32, num_outputs=5, vocab_size=20)
    direct.save_pretrained(tmp_path / "direct")
    assert json.loads((tmp_path / "direct" / "config.json").read_text()) == saved
    saved["max_len"] = 64  # weights that do not fit the config are an error
    (tmp_path / "config.json").write_text(json.dumps(saved))
    with pytest.raises(RuntimeError, match="size mismatch|Error"):
        Transformer.from_pretrained(tmp_path)


def text_task():
    return tasks.build("text", {"seq_len": L, "max_bytes": 20_000})


def byte_gpt2() -> nn.Module:
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=256, n_positions=L, n_embd=32, n_layer=2, n_head=4)
    return transformers.GPT2LMHeadModel(config)


@pytest.fixture(scope="module")
def trained_gpt2() -> nn.Module:
    """A byte-level GPT-2 trained for a few steps: a teacher with opinions."""
    model = byte_gpt2()
    finetune(model, text_task(), steps=20, lr=3e-3, eval_examples=8)
    return model


def test_finetune_the_new_mixers_lowers_the_loss(trained_gpt2):
    model = copy.deepcopy(trained_gpt2)
    hf.replace_attention(model, "global_conv", projections="drop")  # the swap costs loss
    frozen = {k: v.clone() for k, v in model.state_dict().items() if ".mixer." not in k}
    result = finetune(model, text_task(), steps=15, lr=1e-2, freeze=True, eval_examples=48)
    mixer_params = sum(
        p.numel()
        for m in model.modules()
        if isinstance(m, hf.MixerAttention)
        for p in m.mixer.parameters()
    )
    assert result["trainable_params"] == mixer_params
    assert result["after"]["loss"] < result["before"]["loss"] - 0.1
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in frozen.items())


def test_distillation_lowers_the_gap_to_the_teacher(trained_gpt2):
    student = copy.deepcopy(trained_gpt2)
    hf.replace_attention(student, "global_conv")
    result = finetune(
        student,
        text_task(),
        teacher=trained_gpt2,
        steps=15,
        lr=3e-3,
        distil={"kl": 1.0, "mse": 1.0},
        task_weight=0.0,
        eval_examples=48,
    )
    assert result["after"]["kl"] < 0.7 * result["before"]["kl"]
    assert result["after"]["mse"] < result["before"]["mse"]
    assert result["teacher"]["loss"] > 0


def test_finetune_a_sequence_classifier_on_padded_sequences():
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=8,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=32,
        num_labels=2,
    )
    model = transformers.BertForSequenceClassification(config)
    hf.replace_attention(model, "global_conv", padding="zero")
    task = tasks.build("parity", {"seq_len": 16, "min_len": 4, "num_train": 200, "num_test": 40})
    result = finetune(model, task, steps=3, batch_size=8, eval_examples=40)
    assert result["after"]["loss"] > 0 and result["trainable_params"] == result["params"]


def test_finetune_command(tmp_path, capsys):
    byte_gpt2().save_pretrained(tmp_path / "tiny")
    args = [
        "finetune", str(tmp_path / "tiny"), "-p", f"seq_len={L}", "-p", "max_bytes=20000",
        "--steps", "3", "--eval-examples", "8", "--freeze", "--distil", "kl=1,mse=0.5",
        "--option", "kernel=implicit", "--option", "kernel_options.width=16",
        "--out", str(tmp_path / "ft"), "-q",
    ]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "before" in printed and "transformer.h.1.attn" in printed
    result = json.loads((tmp_path / "ft" / "finetune.json").read_text())
    assert result["steps"] == 3 and set(result["before"]) >= {"loss", "kl", "mse"}
    assert len(result["replaced"]) == 2
    loaded = hf.from_pretrained(tmp_path / "ft" / "model")
    assert isinstance(loaded.transformer.h[0].attn, hf.MixerAttention)
    assert main(args) == 2  # the result exists: --overwrite needed
    bad = [*args[:-3], "--out", str(tmp_path / "x"), "--distil", "cosine"]
    assert main(bad) == 2
    long = [*bad[:-2], "-p", "seq_len=64"]
    assert main(long) == 2
    assert "at most 16" in capsys.readouterr().err
    bert = ["finetune", str(tmp_path / "bert"), "-p", f"seq_len={L}", "--out", str(tmp_path / "b")]
    tiny("bert").save_pretrained(tmp_path / "bert")
    assert main(bert) == 2
    assert "vocab_size >= 256" in capsys.readouterr().err
    tiny("bert", vocab_size=256).save_pretrained(tmp_path / "bert")
    assert main(bert) == 2
    assert "predicts next tokens" in capsys.readouterr().err


def test_import_works_without_transformers():
    code = (
        "import sys; sys.modules['transformers'] = None; sys.modules['huggingface_hub'] = None\n"
        "import globalconv, globalconv.hf, globalconv.models, globalconv.cli\n"
        "globalconv.cli.build_parser()\n"
        "from globalconv.config import ModelConfig\n"
        "model = globalconv.models.Transformer(ModelConfig(), max_len=8, num_outputs=2, "
        "vocab_size=4)\n"
        "for call in (lambda: globalconv.hf.load_model('.'), lambda: model.save_pretrained('.')):\n"
        "    try:\n"
        "        call()\n"
        "    except ImportError as err:\n"
        "        print(err)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.count("pip install 'globalconv[hf]'") == 2, out.stdout


def test_generation_benchmark_measures_every_model():
    from globalconv.hf import bench_generate

    rows = bench_generate.measure(
        prompts=[4, 8], new_tokens=2, d_model=16, layers=1, mixer="global_conv", repeats=1
    )
    assert [r[0] for r in rows] == [4, 8] and all(float(r[-1]) > 0 for r in rows)


def test_an_implicit_kernel_builds_after_transformers_loaded_a_model(tmp_path):
    """transformers' loading patches torch factories while torch first caches the ones a
    torch.device context redirects; the meta-device size check must still build every kernel."""
    tiny("llama").save_pretrained(tmp_path / "plain")
    hf.load_model(tmp_path / "plain")
    args = ["train", "-q", "--out", str(tmp_path / "run"), "train.steps=1", "model.d_model=8"]
    assert main([*args, "model.n_layers=1", "model.mixer_options.kernel=implicit"]) == 0
