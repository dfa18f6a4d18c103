"""The HRM student's contract, in one place: the text it reads, its tokens and answer slots, how it scores each legal
action, its agreement with a teacher, and the distillation loss. Acting, distillation, RL and evaluation all call it.

The student reads a compact input, not GPT-2's instructions: the observation text and the legal actions, as GPT-2
tokens, left-truncated and left-padded to a fixed length, followed by K answer slots. Each legal action is a
candidate answer: its tokens (" south" → [5366]) written into the slots, scored by the sum of their log-probabilities
at those slots. "lengths" tells the HRM how many tokens of a row are real, so it computes on those only. The long
preset's head also copies (`HrmConfig.copy_head`): a slot's log-probabilities mix generating a token with pointing at
one in the input, where TextWorld's commands find their names.
"""

from collections.abc import Iterable, Sequence

import torch

from data.tokenizer import gpt2_tokenizer
from hrm import IGNORE_INDEX, Carry, Hrm, HrmConfig, HrmOutput
from hrm.device import autocast
from hrm.losses import q_losses

Item = tuple[str, Sequence[str], int]
"""What the student is asked about: (observation text, legal action names, task id)."""


def student_text(observation: str, legal_actions: Sequence[str]) -> str:
    """Returns the text the student reads: the observation, then the legal actions."""
    return f"{observation}\nActions: {', '.join(legal_actions)}"


class StudentEncoder:
    """Turns (observation text, legal actions, task id) items into the HRM's input ids and candidate answers."""

    def __init__(self, seq_len: int, answer_len: int):
        self.tokenizer = gpt2_tokenizer()
        self.seq_len, self.answer_len = seq_len, answer_len
        self.pad_id = self.tokenizer.eos_token_id
        self.slot_id = self.tokenizer("?").input_ids[0]
        self._candidates: dict[str, list[int]] = {}

    @classmethod
    def for_config(cls, config: HrmConfig) -> "StudentEncoder":
        """Returns the encoder that fits a student of this architecture: its input length and answer slots."""
        return cls(config.seq_len, config.output_len)

    @classmethod
    def for_model(cls, model: Hrm) -> "StudentEncoder":
        """Returns the encoder that fits `model` (`for_config` of its config)."""
        return cls.for_config(model.config)

    def candidate_tokens(self, action: str) -> list[int]:
        """Returns the action's answer tokens (the GPT-2 tokens of " action"); at most answer_len of them."""
        if action not in self._candidates:
            tokens = self.tokenizer(" " + action).input_ids
            if len(tokens) > self.answer_len:
                raise ValueError(f"action {action!r} is {len(tokens)} GPT-2 tokens; the student answers with at most "
                                 f"{self.answer_len} (raise answer_len)")
            self._candidates[action] = tokens
        return self._candidates[action]

    def encode(self, items: Sequence[Item]) -> dict[str, torch.Tensor]:
        """Returns a batch {"inputs" (N, T), "lengths" (N,), "task_ids" (N,), "candidates" (N, A, K)}.

        "lengths" counts each row's real tokens (text + answer slots) at the end of "inputs". Rows with fewer than A
        legal actions are padded with all-IGNORE_INDEX candidates.
        """
        body = self.seq_len - self.answer_len
        most_actions = max(len(actions) for _, actions, _ in items)
        inputs = torch.full((len(items), self.seq_len), self.pad_id, dtype=torch.long)
        lengths = torch.empty(len(items), dtype=torch.long)
        candidates = torch.full((len(items), most_actions, self.answer_len), IGNORE_INDEX, dtype=torch.long)
        texts = [student_text(observation, actions) for observation, actions, _ in items]
        for row, (ids, (_, actions, _)) in enumerate(zip(self.tokenizer(texts).input_ids, items, strict=True)):
            ids = ids[-body:]  # left truncation keeps the end: the actions and the latest part of the observation
            inputs[row, body - len(ids):body] = torch.tensor(ids)
            inputs[row, body:] = self.slot_id
            lengths[row] = len(ids) + self.answer_len
            for a, action in enumerate(actions):
                tokens = self.candidate_tokens(action)
                candidates[row, a, :len(tokens)] = torch.tensor(tokens)
        task_ids = torch.tensor([task for _, _, task in items], dtype=torch.long)
        return {"inputs": inputs, "lengths": lengths, "task_ids": task_ids, "candidates": candidates}


def by_length(batch: dict[str, torch.Tensor], size: int, spread: float = 1.25) -> list[torch.Tensor]:
    """Returns row indices in chunks of at most `size` rows, shortest rows first, a chunk's longest row at most
    `spread` × its shortest: the HRM computes a chunk at its longest row's length, so little goes to padding."""
    if "lengths" not in batch:
        return list(torch.arange(len(batch["inputs"])).split(size))
    order = torch.argsort(batch["lengths"], stable=True)
    lengths = batch["lengths"][order].tolist()
    chunks, start = [], 0
    for i in range(1, len(order) + 1):
        if i == len(order) or i - start == size or lengths[i] > spread * lengths[start]:
            chunks.append(order[start:i])
            start = i
    return chunks


def batches_by_length(tensors: dict[str, torch.Tensor], size: int) -> list[dict[str, torch.Tensor]]:
    """Returns `tensors` cut into batches of at most `size` rows of similar length (see `by_length`)."""
    return [{k: v[rows] for k, v in tensors.items()} for rows in by_length(tensors, size)]


def candidate_log_probs(logits: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """Returns (B, A) summed log-probabilities of candidate token sequences read at the answer slots.

    logits (B, K, V) are the answer slots; candidates (B, A, K) hold each candidate's tokens, IGNORE_INDEX after
    its end. A candidate that is all IGNORE_INDEX (padding) gets −inf, so a softmax over A ignores it.
    """
    logp = torch.log_softmax(logits.float(), dim=-1)  # (B, K, V)
    valid = candidates != IGNORE_INDEX  # (B, A, K)
    tokens = torch.where(valid, candidates, 0)
    # Gathered from (B, K, V) itself, not from a (B, A, K, V) expansion: the gather's backward writes into a zero
    # tensor of its input's size, which for 16 slots, dozens of candidates and GPT-2's vocabulary is gigabytes.
    picked = logp.gather(-1, tokens.transpose(1, 2)).transpose(1, 2)  # (B, A, K)
    scores = (picked * valid).sum(-1)  # (B, A)
    return scores.masked_fill(~valid.any(-1), float("-inf"))


def agrees_with_teacher(student_scores: torch.Tensor, teacher_probs: torch.Tensor) -> torch.Tensor:
    """Returns (B,) bool: the student's best candidate is one of the teacher's best (ties count).

    An oracle indifferent between two shortest routes gives them equal probability; picking either agrees with it.
    "Best" means within a relative 1e-6 of the teacher's highest probability.
    """
    best = teacher_probs >= teacher_probs.max(-1, keepdim=True).values * (1 - 1e-6)
    return best.gather(-1, student_scores.argmax(-1, keepdim=True)).squeeze(-1)


def distillation_loss(carry: Carry, output: HrmOutput,
                      continue_loss: bool = True) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Returns (summed loss, summed metrics) for imitating a teacher's distribution over candidate answers.

    The batch carries "candidates" (B, A, K), "teacher_probs" (B, A) and optionally per-row "weights" (B,).
    loss = Σ_rows weight · CE(teacher, student) + 0.5 (Q-halt BCE + Q-continue BCE), where the student's distribution
    is the softmax over candidates of their summed token log-probabilities and "correct" (the Q-halt target) means the
    student's argmax is one of the teacher's best actions (`agrees_with_teacher`). A loss for `hrm.Trainer`.
    """
    candidates, teacher = carry.data["candidates"], carry.data["teacher_probs"]
    student_logp = torch.log_softmax(candidate_log_probs(output.logits, candidates), dim=-1)  # (B, A)
    cross_entropy = -(teacher * student_logp.masked_fill(teacher == 0, 0.0)).sum(-1)  # (B,)
    if "weights" in carry.data:
        cross_entropy = cross_entropy * carry.data["weights"]
    cross_entropy = cross_entropy.sum()
    agree = agrees_with_teacher(student_logp.detach(), teacher)
    q_loss, metrics = q_losses(carry, output, agree, carry.halted, continue_loss)
    agreed = (carry.halted & agree).sum()
    metrics.update(accuracy=agreed, exact_accuracy=agreed, lm_loss=cross_entropy.detach())
    return cross_entropy + q_loss, metrics


@torch.no_grad()
def evaluate_agreement(model: Hrm, batches: Iterable[dict[str, torch.Tensor]], adaptive: bool = False,
                       mixed_precision: str = "none") -> dict[str, float]:
    """Returns held-out metrics: agreement (the student's argmax is one of the teacher's best actions), loss
    (cross-entropy to the teacher's distribution), q_halt_accuracy and mean ACT steps. `adaptive` halts as the HRM
    policy does when it acts. Rows count as many decisions as their "counts" say (one each without it)."""
    model.eval()
    device = next(model.parameters()).device
    totals = {"agreement": 0.0, "loss": 0.0, "q_halt_accuracy": 0.0, "steps": 0.0}
    count = 0.0
    for batch in batches:
        batch = {k: v.to(device) for k, v in batch.items()}
        with autocast(device, mixed_precision):
            prediction = model.predict(batch, adaptive=adaptive)
        logp = torch.log_softmax(candidate_log_probs(prediction.logits, batch["candidates"]), -1)
        teacher = batch["teacher_probs"]
        agree = agrees_with_teacher(logp, teacher)
        n = batch.get("counts", torch.ones(len(agree), device=device))
        totals["agreement"] += float((n * agree).sum())
        totals["loss"] += float(-(n * (teacher * logp.masked_fill(teacher == 0, 0.0)).sum(-1)).sum())
        totals["q_halt_accuracy"] += float((n * ((prediction.q_halt_logits >= 0) == agree)).sum())
        totals["steps"] += float((n * prediction.steps).sum())
        count += float(n.sum())
    return {k: v / max(count, 1.0) for k, v in totals.items()}


def acting_log_probs(model: Hrm, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns ((B, A) log π over the candidates, (B, D) the state at the first position) as the acting policy halts.

    Each row runs segments until Q-halt > Q-continue (or halt_max_steps), as `HrmPolicy` decides; only the segment it
    halted in carries gradient (the one-step approximation, as in HRM training). The first-position state is what the
    Q head reads, and what a value head reads.
    """
    x, mask = model.embed_batch(batch)  # (B, P+W, D)
    z_H, z_L = model.initial_state(x)
    # The first segment runs with the gradient: most rows halt in it, and they need no second pass.
    z_H, z_L = model.segment(z_H, z_L, x, mask)
    q_halt, q_continue = model.q_values(z_H)
    going = ~((q_halt > q_continue) | (model.config.halt_max_steps == 1))
    if going.any():
        rows = going.nonzero().squeeze(1)  # the rows that think on: find each one's halting segment without it
        entry_H, entry_L = z_H[rows].detach(), z_L[rows].detach()
        later_H, later_L = entry_H.clone(), entry_L.clone()  # each row's state entering the segment it halts in
        done = torch.zeros(len(rows), dtype=torch.bool, device=x.device)
        with torch.no_grad():
            for step in range(2, model.config.halt_max_steps + 1):
                next_H, next_L = model.segment(entry_H, entry_L, x[rows], None if mask is None else mask[rows])
                q_halt, q_continue = model.q_values(next_H)
                stop = ~done & ((q_halt > q_continue) | (step == model.config.halt_max_steps))
                later_H[stop], later_L[stop] = entry_H[stop], entry_L[stop]
                done |= stop
                if done.all():
                    break
                entry_H, entry_L = next_H, next_L
        halted_H, _ = model.segment(later_H, later_L, x[rows], None if mask is None else mask[rows])
        z_H = z_H.index_put((rows,), halted_H)
    logits = model.answer(z_H, model.column_ids(batch, x), mask)
    logp = torch.log_softmax(candidate_log_probs(logits, batch["candidates"]), dim=-1)
    return logp, z_H[:, 0]
