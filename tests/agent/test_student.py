"""The student's contract: its input and answer slots, candidate scoring, agreement with a teacher."""

import torch

from agent.student import StudentEncoder, agrees_with_teacher, by_length, candidate_log_probs
from data.tokenizer import gpt2_tokenizer
from hrm import IGNORE_INDEX


def test_encoder_left_pads_and_writes_candidates_into_the_answer_slots():
    encoder = StudentEncoder(seq_len=24, answer_len=3)
    batch = encoder.encode([("A F\nF G", ("left", "down"), 0), ("x " * 40, ("south", "pickup", "dropoff"), 2)])
    assert batch["inputs"].shape == (2, 24) and batch["candidates"].shape == (2, 3, 3)
    assert (batch["inputs"][:, -3:] == encoder.slot_id).all()
    assert batch["inputs"][0, 0] == encoder.pad_id  # short text: padded on the left
    assert gpt2_tokenizer().decode(batch["inputs"][1, :21]).endswith("Actions: south, pickup, dropoff")
    left = gpt2_tokenizer()(" left").input_ids
    assert batch["candidates"][0, 0, :len(left)].tolist() == left
    assert (batch["candidates"][0, 2] == IGNORE_INDEX).all()  # row 0 has 2 actions: the third is padding
    assert batch["task_ids"].tolist() == [0, 2]
    real = len(gpt2_tokenizer()("A F\nF G\nActions: left, down").input_ids)
    assert batch["lengths"].tolist() == [real + 3, 24]  # the long row is truncated to the whole input
    assert (batch["inputs"][0, :24 - real - 3] == encoder.pad_id).all()


def test_chunks_by_length_keep_every_row_once_shortest_first():
    batch = {"inputs": torch.zeros(5, 8), "lengths": torch.tensor([7, 3, 5, 3, 8])}
    chunks = by_length(batch, 2)
    assert [c.tolist() for c in chunks] == [[1, 3], [2], [0, 4]]  # 5 > 1.25 × 3: a new chunk


def test_a_candidate_scores_the_sum_of_its_tokens_log_probabilities():
    logits = torch.randn(1, 3, 10)
    logp = torch.log_softmax(logits, -1)
    candidates = torch.tensor([[[4, 7, IGNORE_INDEX], [2, IGNORE_INDEX, IGNORE_INDEX],
                                [IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX]]])
    scores = candidate_log_probs(logits, candidates)
    torch.testing.assert_close(scores[0, :2], torch.stack([logp[0, 0, 4] + logp[0, 1, 7], logp[0, 0, 2]]))
    assert scores[0, 2] == float("-inf")  # padding candidate: never chosen


def test_candidate_scores_send_their_gradient_to_their_own_tokens():
    logits = torch.randn(2, 3, 10, requires_grad=True)
    candidates = torch.tensor([[[4, 7, IGNORE_INDEX], [4, 1, 9]], [[2, IGNORE_INDEX, IGNORE_INDEX], [0, 0, 0]]])
    weights = torch.tensor([[1.0, -2.0], [0.5, 3.0]])
    (candidate_log_probs(logits, candidates) * weights).sum().backward()
    expected = torch.zeros_like(logits)
    for row in range(2):
        for a in range(2):
            for slot, token in enumerate(candidates[row, a].tolist()):
                if token != IGNORE_INDEX:  # d log_softmax(z)[t] / dz = onehot(t) − softmax(z)
                    expected[row, slot] += weights[row, a] * (torch.nn.functional.one_hot(torch.tensor(token), 10)
                                                              - torch.softmax(logits[row, slot].detach(), -1))
    torch.testing.assert_close(logits.grad, expected)


def test_agreement_accepts_any_of_the_teachers_tied_best_actions():
    teacher = torch.tensor([[0.5, 0.0, 0.5, 0.0], [0.7, 0.1, 0.1, 0.1], [0.25, 0.25, 0.25, 0.25]])
    picks_second_tie = torch.tensor([[0.0, 1.0, 3.0, 2.0], [0.0, 1.0, 3.0, 2.0], [0.0, 1.0, 3.0, 2.0]])
    assert agrees_with_teacher(picks_second_tie, teacher).tolist() == [True, False, True]
    assert agrees_with_teacher(torch.tensor([[0.0, 3.0, 1.0, 2.0]]), teacher[:1]).tolist() == [False]


def test_the_long_preset_answers_with_a_12_token_action_among_64():
    from agent.hrm_policy import HrmPolicy
    from agent.policy import Observation
    from agent.student import acting_log_probs
    from hrm import Hrm, HrmConfig

    torch.manual_seed(0)
    config = HrmConfig.preset("agent-29m-long", hidden_size=32, num_heads=2, task_emb_dim=32, H_layers=1, L_layers=1,
                              halt_max_steps=1)
    model = Hrm(config)
    long_action = "take the rusty iron key out of the small old wooden chest"
    actions = tuple([f"go {d} {n}" for d in ("north", "south", "east", "west") for n in range(15)] +
                    ["look", "inventory", "wait", long_action])
    encoder = StudentEncoder.for_model(model)
    tokens = gpt2_tokenizer()(" " + long_action).input_ids
    assert len(actions) == 64 and len(tokens) == 12 and config.answer_len == 16
    observation = "You are in a dusty attic. " * 40  # ~250 tokens: more than the default preset's 128
    batch = encoder.encode([(observation, actions, 9)])
    assert batch["lengths"][0] > 128 and batch["candidates"][0, 63, :12].tolist() == tokens
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(30):  # imitate a teacher that always takes the long action
        logp, _ = acting_log_probs(model.train(), batch)
        loss = -logp[0, 63]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    decision = HrmPolicy(model.eval()).decide([Observation("Attic", 9, observation, actions, None)], greedy=True)[0]
    assert actions[decision.action] == long_action
