"""The HRM × LM model: the bypass ablation's parameter count, one ACT segment's gradients, the KV cache."""

import functools

import pytest
import torch

from hrm.lm.arithmetic import ArithmeticConfig, ArithmeticTask
from hrm.lm.model import HrmLm, LmConfig
from hrm.losses import act_loss

TASK = ArithmeticTask(ArithmeticConfig(max_digits=3, heldout_size=10, ood_size=10, ood_min_digits=4,
                                       ood_max_digits=4))


def tiny(bypass: bool = False, positions: str = "sequence") -> HrmLm:
    return HrmLm(LmConfig(vocab_size=TASK.tokenizer.vocab_size, prompt_len=TASK.max_shape[0], hidden_size=32,
                          num_heads=2, halt_max_steps=3, bypass_hrm=bypass, encoder_positions=positions))


def test_the_bypass_ablation_has_exactly_the_same_parameters():
    assert tiny().num_parameters() == tiny(bypass=True).num_parameters()
    assert [n for n, _ in tiny().named_parameters()] == [n for n, _ in tiny(True).named_parameters()]


@pytest.mark.parametrize("positions", ["sequence", "abacus"])
def test_one_segment_trains_encoder_and_decoder_through_act_loss(positions):
    model = tiny(positions=positions).train()
    batch = TASK.batch_at(0, 8)
    carry, out = model(model.initial_carry(batch), batch)
    assert out.logits.shape == (*batch["labels"].shape, TASK.tokenizer.vocab_size)
    assert out.target_q_continue is not None and carry.steps.tolist() == [1] * 8
    loss, _ = functools.partial(act_loss, loss_type="softmax")(carry, out)
    loss.backward()
    for name in ("hrm.L_level.layers.0.attn.qkv_proj.weight", "hrm.H_level.layers.0.mlp.down_proj.weight",
                 "hrm.embed_tokens.weight", "hrm.q_head.weight", "positions.weight",
                 "decoder.1.cross_attn.kv_proj.weight", "head.weight"):
        assert model.get_parameter(name).grad.abs().sum() > 0, name
    assert not carry.z_H.requires_grad  # detached between segments


def test_cached_decoding_matches_the_full_decoder():
    model = tiny().eval()
    batch = TASK.encode([(12, "+", 7), (305, "+", 99)])
    memory, mask, steps = model.encode(batch, adaptive=False)
    assert steps.tolist() == [3, 3] and mask is not None
    tokens = torch.randint(3, TASK.tokenizer.vocab_size, (2, 6))
    kv, offsets = model.cross_kv(memory, batch["digit_pos"]), batch["answer_offset"]
    full, _ = model.decode(tokens, 0, offsets, kv, mask)
    cache, stepwise = None, []
    for t in range(tokens.shape[1]):
        logits, cache = model.decode(tokens[:, t:t + 1], t, offsets, kv, mask, cache)
        stepwise.append(logits)
    torch.testing.assert_close(torch.cat(stepwise, 1), full, atol=1e-5, rtol=1e-5)


def test_adaptive_encoding_stops_rows_whose_q_halt_wins():
    model = tiny().eval()
    with torch.no_grad():
        model.hrm.q_head.bias.copy_(torch.tensor([5.0, -5.0]))  # halt at once
    batch = TASK.encode([(1, "+", 2), (34, "+", 5)])
    assert model.encode(batch, adaptive=True)[2].tolist() == [1, 1]
    assert model.encode(batch, adaptive=False)[2].tolist() == [3, 3]


def test_abacus_encoder_positions_rotate_each_token_by_its_digit_place():
    batch = TASK.encode_prompts(["What is 12 + 7?"])
    cos, sin = tiny(positions="abacus").encoder_rope(batch)
    model = tiny(positions="abacus")
    assert cos.shape == (1, 1, batch["inputs"].shape[1], 16)
    torch.testing.assert_close(cos[0, 0], model.rope.cos[batch["digit_pos"][0]])
    assert batch["digit_pos"][0].tolist()[9:] == [2, 1, 0, 0, 0, 1, 0]  # "12 + 7?": tens 2, ones 1
    torch.testing.assert_close(cos[0, 0, 10], cos[0, 0, 14])  # the ones digits of 12 and 7 share a position
    assert tiny(positions="sequence").encoder_rope(batch) is None
