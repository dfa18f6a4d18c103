"""The HRM's mechanics: preset sizes, the one-step gradient, the ACT carry, adaptive halting."""

import pytest
import torch

from hrm import Hrm, HrmConfig
from tests.hrm.tiny import random_batch, tiny_config


def test_sudoku_preset_has_the_published_parameter_count():
    assert Hrm(HrmConfig.preset("sudoku-27m")).num_parameters() == 27_275_266


def test_agent_preset_is_29_1m_within_2_percent():
    model = Hrm(HrmConfig.preset("agent-29m"))
    assert model.config.vocab_size == 50_257
    assert model.embed_tokens.weight.data_ptr() != model.lm_head.weight.data_ptr()  # untied
    assert abs(model.num_parameters() - 29.1e6) <= 0.02 * 29.1e6


def test_unknown_preset_names_the_choices():
    with pytest.raises(ValueError, match="agent-29m"):
        HrmConfig.preset("gpt-5")


@pytest.mark.parametrize("pos_encoding", ["rope", "learned"])
def test_segment_output_shapes(pos_encoding):
    config = tiny_config(pos_encoding=pos_encoding)
    model = Hrm(config).eval()
    batch = random_batch(config, batch_size=3)
    carry, out = model(model.initial_carry(batch), batch)
    assert out.logits.shape == (3, config.seq_len, config.vocab_size)
    assert out.q_halt_logits.shape == out.q_continue_logits.shape == (3,)
    assert carry.z_H.shape == (3, config.seq_len + config.task_emb_len, config.hidden_size)


def test_answer_head_reads_only_the_answer_slots():
    config = tiny_config(answer_len=2)
    model = Hrm(config).eval()
    batch = random_batch(config, batch_size=3)
    carry, out = model(model.initial_carry(batch), batch)
    assert out.logits.shape == (3, 2, config.vocab_size)
    torch.testing.assert_close(out.logits, model.lm_head(carry.z_H[:, -2:]))
    assert model.predict(batch).logits.shape == (3, 2, config.vocab_size)


def test_gradient_flows_only_through_the_last_L_and_H_update():
    config = tiny_config(H_cycles=2, L_cycles=3)
    model = Hrm(config).train()
    calls = {"L": [], "H": []}
    model.L_level.register_forward_hook(lambda m, i, o: calls["L"].append(o.requires_grad))
    model.H_level.register_forward_hook(lambda m, i, o: calls["H"].append(o.requires_grad))
    batch = random_batch(config)
    carry = model.initial_carry(batch)
    z_H, z_L = model.segment(carry.z_H.requires_grad_(), carry.z_L.requires_grad_(),
                             model.embed(batch["inputs"], batch["task_ids"]))
    logits = model.answer(z_H)
    # H_cycles × L_cycles = 6 L-updates and 2 H-updates; only the last of each is in the autograd graph.
    assert calls["L"] == [False] * 5 + [True]
    assert calls["H"] == [False, True]
    logits.sum().backward()
    assert carry.z_H.grad is None and carry.z_L.grad is None  # nothing flows into the incoming state
    assert all(p.grad is not None for p in model.L_level.parameters())


def test_carry_is_detached_between_segments():
    config = tiny_config()
    model = Hrm(config).train()
    batch = random_batch(config)
    carry, out = model(model.initial_carry(batch), batch)
    assert out.logits.requires_grad
    assert not carry.z_H.requires_grad and not carry.z_L.requires_grad


def test_halted_rows_restart_on_the_new_example_and_the_others_keep_their_carry():
    config = tiny_config()
    model = Hrm(config).eval()
    old, new = random_batch(config, batch_size=2, seed=1), random_batch(config, batch_size=2, seed=2)
    carry, _ = model(model.initial_carry(old), old)  # both rows now work on `old`, one segment in
    carry.halted = torch.tensor([True, False])
    kept_z_H = carry.z_H[1].clone()

    next_carry, out = model(carry, new)

    # Row 0 halted: it takes the new example and starts from the fixed initial state, as a fresh carry would.
    assert torch.equal(next_carry.data["inputs"][0], new["inputs"][0])
    assert next_carry.steps.tolist() == [1, 2]
    fresh_carry, fresh_out = model(model.initial_carry(new), new)
    torch.testing.assert_close(out.logits[0], fresh_out.logits[0])
    # Row 1 did not halt: it keeps its example and continues from its own state.
    assert torch.equal(next_carry.data["inputs"][1], old["inputs"][1])
    x = model.embed(old["inputs"][1:], old["task_ids"][1:])
    z_H, _ = model.segment(kept_z_H[None], carry.z_L[1:], x)
    torch.testing.assert_close(out.logits[1], model.answer(z_H)[0])


def _force_q(model: Hrm, halt: float, cont: float) -> None:
    with torch.no_grad():
        model.q_head.weight.zero_()
        model.q_head.bias.copy_(torch.tensor([halt, cont]))


def test_adaptive_inference_stops_once_q_halt_wins():
    config = tiny_config(halt_max_steps=6)
    model = Hrm(config).eval()
    batch = random_batch(config)
    _force_q(model, halt=3.0, cont=-3.0)
    adaptive = model.predict(batch, adaptive=True)
    full = model.predict(batch, adaptive=False)
    assert adaptive.steps.tolist() == [1] * 4
    assert full.steps.tolist() == [6] * 4
    # The adaptive answer is the first segment's answer.
    first = model(model.initial_carry(batch), batch)[1]
    torch.testing.assert_close(adaptive.logits, first.logits)


def test_adaptive_inference_keeps_max_steps_as_the_bound():
    config = tiny_config(halt_max_steps=3)
    model = Hrm(config).eval()
    _force_q(model, halt=-3.0, cont=3.0)  # continue always wins
    assert model.predict(random_batch(config), adaptive=True).steps.tolist() == [3] * 4
    assert model.predict(random_batch(config), adaptive=True, max_steps=2).steps.tolist() == [2] * 4


def test_each_row_answers_with_the_segment_where_it_halted():
    config = tiny_config(halt_max_steps=5)
    model = Hrm(config).eval()
    with torch.no_grad():  # distinct task embeddings and a sharp random Q head, so rows halt at different segments
        model.task_emb.weight.normal_(0.0, 1.0)
        model.q_head.weight.normal_(0.0, 1.0)
        model.q_head.bias.zero_()
    batch = random_batch(config, batch_size=16)
    prediction = model.predict(batch, adaptive=True)
    assert len(set(prediction.steps.tolist())) > 1, "the test needs rows that halt at different segments"

    x = model.embed(batch["inputs"], batch["task_ids"])
    carry = model.initial_carry(batch)
    z_H, z_L, per_segment = carry.z_H, carry.z_L, []
    for _ in range(config.halt_max_steps):
        z_H, z_L = model.segment(z_H, z_L, x)
        q_halt, q_continue = model.q_values(z_H)
        per_segment.append((model.answer(z_H), q_halt > q_continue))
    for row, steps in enumerate(prediction.steps.tolist()):
        halts = [bool(h[row]) for _, h in per_segment]
        assert steps == (halts.index(True) + 1 if True in halts else config.halt_max_steps)
        torch.testing.assert_close(prediction.logits[row], per_segment[steps - 1][0][row])


def test_training_halts_by_q_or_at_the_max():
    config = tiny_config(halt_max_steps=3, halt_exploration_prob=0.0)
    model = Hrm(config).train()
    batch = random_batch(config)
    _force_q(model, halt=-5.0, cont=5.0)
    carry = model.initial_carry(batch)
    halted = []
    for _ in range(3):
        carry, out = model(carry, batch)
        halted.append(carry.halted.tolist())
        assert out.target_q_continue is not None and out.target_q_continue.shape == (4,)
    assert halted == [[False] * 4, [False] * 4, [True] * 4]
    _force_q(model, halt=5.0, cont=-5.0)
    carry, _ = model(model.initial_carry(batch), batch)
    assert carry.halted.all()


def test_exploration_forces_a_minimum_number_of_steps():
    config = tiny_config(halt_max_steps=4, halt_exploration_prob=1.0)
    model = Hrm(config).train()
    _force_q(model, halt=5.0, cont=-5.0)  # Q says halt at once, but exploration requires at least 2 steps
    batch = random_batch(config, batch_size=64)
    carry, _ = model(model.initial_carry(batch), batch)
    assert not carry.halted.any()


# --- no compute on padding ---------------------------------------------------------------------------------------


def _with_lengths(config, lengths: list[int], seed: int = 0) -> dict[str, torch.Tensor]:
    """Returns a random batch with "lengths"; its padding columns hold random tokens, which must never be read."""
    return {**random_batch(config, batch_size=len(lengths), seed=seed), "lengths": torch.tensor(lengths)}


def _row(batch: dict[str, torch.Tensor], i: int) -> dict[str, torch.Tensor]:
    return {k: v[i:i + 1] for k, v in batch.items()}


def _sharp_model(config, dtype: torch.dtype = torch.float32) -> Hrm:
    """Returns a model whose rows halt at different segments: distinct task embeddings and a random Q head."""
    torch.manual_seed(0)
    model = Hrm(config).to(dtype).eval()
    with torch.no_grad():
        model.task_emb.weight.normal_(0.0, 1.0)
        model.q_head.weight.normal_(0.0, 1.0)
        model.q_head.bias.zero_()
    return model


# A row's fp32 outputs depend on its batch at ~1e-6 per segment (reduction order), with or without "lengths", and
# the recurrence grows that to ~1e-4 in 5 segments: the ACT runs compare in fp64, fp32 is held to 1e-5 for one segment.


@pytest.mark.parametrize("pos_encoding, copy_head", [("rope", False), ("learned", False), ("rope", True)])
def test_with_lengths_each_row_predicts_as_it_would_alone(pos_encoding, copy_head):
    config = tiny_config(seq_len=8, answer_len=2, halt_max_steps=5, pos_encoding=pos_encoding, copy_head=copy_head)
    batch = _with_lengths(config, [8, 3, 5, 2, 6, 4], seed=3)
    model = _sharp_model(config)
    one_segment = model.predict(batch, adaptive=False, max_steps=1)
    for i in range(len(batch["inputs"])):
        alone = model.predict(_row(batch, i), adaptive=False, max_steps=1)
        torch.testing.assert_close(one_segment.logits[i], alone.logits[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(one_segment.q_halt_logits[i], alone.q_halt_logits[0], atol=1e-5, rtol=1e-5)

    model = _sharp_model(config, torch.float64)
    together = model.predict(batch, bootstrap=True)
    assert len(set(together.steps.tolist())) > 1, "the test needs rows that halt at different segments"
    for i in range(len(batch["inputs"])):
        alone = model.predict(_row(batch, i), bootstrap=True)  # W is this row's length: no padding at all
        assert together.steps[i] == alone.steps[0]
        for name in ("logits", "q_halt_logits", "q_continue_logits", "target_q_continue"):
            torch.testing.assert_close(getattr(together, name)[i], getattr(alone, name)[0], atol=1e-9, rtol=1e-9)


@pytest.mark.parametrize("pos_encoding, copy_head", [("rope", False), ("learned", False), ("rope", True)])
def test_with_lengths_the_act_carry_gives_each_row_its_own_outputs(pos_encoding, copy_head):
    config = tiny_config(seq_len=8, answer_len=2, halt_max_steps=8, halt_exploration_prob=0.0,
                         pos_encoding=pos_encoding, copy_head=copy_head)
    model = _sharp_model(config, torch.float64).train()
    first = _with_lengths(config, [3, 6], seed=1)  # rows A, B
    c_and_d = _with_lengths(config, [8, 2], seed=2)  # C replaces A after 2 segments, D is never loaded
    d_and_b = _with_lengths(config, [2, 6], seed=2)  # D replaces C after 1 more (B's slot keeps B)
    d_and_b["inputs"][0], d_and_b["task_ids"][0] = c_and_d["inputs"][1], c_and_d["task_ids"][1]
    carry = model.initial_carry(first)
    outputs = []
    for halted, batch in [(None, first), ([False, False], first), ([True, False], c_and_d), ([True, False], d_and_b)]:
        if halted is not None:
            carry.halted = torch.tensor(halted)
        carry, out = model(carry, batch)
        assert carry.z_H.shape == (2, config.task_emb_len + config.seq_len, config.hidden_size)
        outputs.append(out)

    def alone(batch, row, segments):
        carry, single = model.initial_carry(_row(batch, row)), _row(batch, row)
        for _ in range(segments):
            carry.halted = torch.tensor([False]) if carry.steps.any() else carry.halted
            carry, out = model(carry, single)
        return out

    # (segment index, row in the batch) -> (example's batch, its row there, segments it has run)
    expected = {(1, 0): (first, 0, 2), (1, 1): (first, 1, 2), (2, 0): (c_and_d, 0, 1), (2, 1): (first, 1, 3),
                (3, 0): (d_and_b, 0, 1), (3, 1): (first, 1, 4)}
    for (segment, row), (batch, source, segments) in expected.items():
        ref, got = alone(batch, source, segments), outputs[segment]
        for name in ("logits", "q_halt_logits", "q_continue_logits", "target_q_continue"):
            torch.testing.assert_close(getattr(got, name)[row], getattr(ref, name)[0], atol=1e-9, rtol=1e-9)


def _copy_batch(generator: torch.Generator, first_tokens: torch.Tensor, size: int, vocab: int = 64):
    """Returns a batch of 6 random tokens, the last an answer slot, labelled with the first: a copying task."""
    inputs = torch.randint(1, vocab, (size, 6), generator=generator)
    inputs[:, 0] = first_tokens[torch.randint(0, len(first_tokens), (size,), generator=generator)]
    inputs[:, -1] = 0
    return {"inputs": inputs, "labels": inputs[:, :1].clone(), "task_ids": torch.zeros(size, dtype=torch.long)}


@pytest.mark.usefixtures("one_thread")
def test_the_copy_head_answers_with_input_tokens_it_never_answered_with_in_training():
    seen, unseen = torch.arange(1, 32), torch.arange(32, 64)  # tokens copied in training / only at evaluation
    accuracy = {}
    for copy_head in (False, True):
        torch.manual_seed(0)
        model = Hrm(tiny_config(vocab_size=64, answer_len=1, num_tasks=1, halt_max_steps=1, copy_head=copy_head))
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
        generator = torch.Generator().manual_seed(0)
        for _ in range(300):
            batch = _copy_batch(generator, seen, 64)
            _, out = model(model.initial_carry(batch), batch)
            loss = torch.nn.functional.cross_entropy(out.logits[:, -1], batch["labels"][:, 0])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        for name, tokens in (("seen", seen), ("unseen", unseen)):
            batch = _copy_batch(torch.Generator().manual_seed(1), tokens, 256)
            predicted = model.eval().predict(batch).logits[:, -1].argmax(-1)
            accuracy[copy_head, name] = (predicted == batch["labels"][:, 0]).float().mean().item()
    assert accuracy[False, "seen"] > 0.95 and accuracy[True, "seen"] > 0.95
    assert accuracy[False, "unseen"] < 0.1  # a vocabulary head never learnt to answer with these tokens
    assert accuracy[True, "unseen"] > 0.95  # the copy head points at them
    probs = model.predict(batch).logits.exp().sum(-1)  # the head's log-probabilities are normalised
    torch.testing.assert_close(probs, torch.ones_like(probs))


def test_the_copy_head_needs_answer_slots_and_tokens_before_them():
    with pytest.raises(ValueError, match="answer_len"):
        tiny_config(copy_head=True)


def test_with_lengths_only_the_prefix_and_the_longest_rows_columns_are_computed():
    config = tiny_config(seq_len=8, answer_len=2, halt_max_steps=4)
    model = Hrm(config).eval()
    P = config.task_emb_len
    batch = _with_lengths(config, [7, 3, 2])
    x, mask = model.embed_batch(batch)
    assert x.shape == (3, P + 7, config.hidden_size)
    assert mask.tolist()[1] == [True] * P + [False] * 4 + [True] * 3
    assert model.embed_batch(_row(batch, 0))[1] is None  # no padded row: no mask, SDPA's fast path

    seen = []
    model.L_level.register_forward_hook(lambda m, args, out: seen.append((args[0].shape[1], args[3] is None)))
    # The first row still thinking halts at every segment, so the longest rows leave first and W shrinks.
    model.q_values = lambda z: ((torch.arange(len(z)) == 0).float() - 0.5, torch.zeros(len(z)))
    assert model.predict(batch).steps.tolist() == [1, 2, 3]
    per_segment = config.H_cycles * config.L_cycles
    assert seen == [(P + 7, False)] * per_segment + [(P + 3, False)] * per_segment + [(P + 2, True)] * per_segment


def test_the_public_segment_api_reproduces_predict_with_lengths():
    config = tiny_config(seq_len=8, answer_len=2, halt_max_steps=3)
    model = _sharp_model(config)
    batch = _with_lengths(config, [5, 2, 8])
    x, mask = model.embed_batch(batch)  # (B, P+W, D), (B, P+W)
    z_H, z_L = model.initial_state(x)
    for _ in range(3):
        z_H, z_L = model.segment(z_H, z_L, x, mask)
    expected = model.predict(batch, adaptive=False)
    torch.testing.assert_close(model.answer(z_H), expected.logits)
    torch.testing.assert_close(model.q_values(z_H)[0], expected.q_halt_logits)


def test_full_lengths_or_no_task_prefix_are_the_same_as_no_lengths():
    for config in (tiny_config(answer_len=2), tiny_config(task_emb_dim=0)):
        model = _sharp_model(config) if config.task_emb_dim else Hrm(config).eval()
        batch = random_batch(config)
        lengths = [config.seq_len] * 4 if config.task_emb_dim else [2, 3, 4, 5]  # ignored without a prefix
        plain, with_lengths = model.predict(batch), model.predict({**batch, "lengths": torch.tensor(lengths)})
        assert torch.equal(plain.logits, with_lengths.logits) and torch.equal(plain.steps, with_lengths.steps)


def test_lengths_beyond_seq_len_are_refused():
    config = tiny_config()
    with pytest.raises(ValueError, match="seq_len"):
        Hrm(config).predict({**random_batch(config), "lengths": torch.tensor([1, 2, 3, config.seq_len + 1])})
