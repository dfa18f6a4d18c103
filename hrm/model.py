"""The Hierarchical Reasoning Model with Adaptive Computation Time (Wang et al. 2025, arXiv:2506.21734).

Two recurrent transformer modules: a slow high-level H and a fast low-level L. One *segment* runs
H_cycles × L_cycles L-updates and H_cycles H-updates; L reads z_L + z_H + x, H reads z_H + z_L. Only the last L and
the last H update carry gradient (the one-step gradient approximation); the carry is detached between segments
(deep supervision). ACT: a Q head on the first position predicts (halt, continue); halted rows restart from fixed
initial states with the next example. Mirrors the seed's `hrm_act_v1.py` but runs on any device and returns typed
carries and outputs.

No compute on padding: a batch may give "lengths", the real tokens at the end of each left-padded row. The model then
computes only the task prefix and the last W = max(lengths) token columns, at their original positions, and masks
each row's padding keys in attention, so a row's outputs do not depend on the other rows' lengths.
"""

import math
from dataclasses import asdict, dataclass, field, replace

import torch
from torch import nn

from hrm.layers import Linear, ReasoningModule, RotaryEmbedding, trunc_normal_


@dataclass(frozen=True)
class HrmConfig:
    """Architecture of an HRM. Saved in every checkpoint; `HrmConfig.preset(name)` gives the named sizes."""

    vocab_size: int
    """Token vocabulary size (50,257 for GPT-2's vocabulary, 11 for Sudoku)."""
    seq_len: int
    """Tokens per example (inputs and labels have this length)."""
    num_tasks: int = 1
    """Rows of the per-task (puzzle) embedding table; task ids lie in [0, num_tasks)."""
    task_emb_dim: int = 0
    """Width of the task embedding, prepended as ceil(task_emb_dim / hidden_size) extra positions; 0 disables it."""
    hidden_size: int = 512
    num_heads: int = 8
    expansion: float = 4.0
    """SwiGLU width factor (the inner width is 2/3 of expansion × hidden, rounded up to a multiple of 256)."""
    H_layers: int = 4
    L_layers: int = 4
    H_cycles: int = 2
    L_cycles: int = 2
    halt_max_steps: int = 16
    """The most ACT segments an example may use."""
    halt_exploration_prob: float = 0.1
    """In training, the chance that a row is forced to run a random minimum number of segments."""
    answer_len: int = 0
    """The answer head reads only the last answer_len positions (the agent's answer slots); 0 reads all seq_len.
    Labels have output_len columns."""
    copy_head: bool = False
    """A pointer-generator answer head (See et al. 2017): each answer slot also attends over the input tokens
    before the slots, and its distribution is a learned mix of the vocabulary head's and that attention put on the
    tokens attended to, so a slot can copy a name from its input rather than having to generate it. The head then
    returns log-probabilities. The original HRM has no such head."""
    pos_encoding: str = "rope"
    """"rope" (rotary) or "learned" (an absolute position table)."""
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5

    def __post_init__(self):
        if self.pos_encoding not in ("rope", "learned"):
            raise ValueError(f"pos_encoding must be 'rope' or 'learned', got {self.pos_encoding!r}")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")
        if not 0 <= self.answer_len <= self.seq_len:
            raise ValueError(f"answer_len must lie in [0, seq_len={self.seq_len}], got {self.answer_len}")
        if self.copy_head and not 0 < self.answer_len < self.seq_len:
            raise ValueError(f"copy_head copies from the tokens before the answer slots: it needs 0 < answer_len < "
                             f"seq_len, got answer_len={self.answer_len}, seq_len={self.seq_len}")
        if self.halt_max_steps < 1:
            raise ValueError(f"halt_max_steps must be at least 1, got {self.halt_max_steps}")

    @property
    def task_emb_len(self) -> int:
        """Number of prefix positions the task embedding occupies."""
        return -(self.task_emb_dim // -self.hidden_size)

    @property
    def output_len(self) -> int:
        """Number of positions the answer head produces logits for."""
        return self.answer_len or self.seq_len

    @staticmethod
    def preset(name: str, **overrides) -> "HrmConfig":
        """Returns the named preset's config with `overrides` applied."""
        if name not in PRESETS:
            raise ValueError(f"unknown HRM preset {name!r}; choose one of {', '.join(PRESETS)}")
        return replace(PRESETS[name], **overrides)

    def to_dict(self) -> dict:
        """Returns the config as a plain dict (what checkpoints store)."""
        return asdict(self)


PRESETS = {
    # The published Sudoku-Extreme configuration: 27,275,266 parameters (the task table is not counted, see
    # Hrm.num_parameters). Sudoku has a single puzzle identifier, so the task embedding is one learned prefix token.
    "sudoku-27m": HrmConfig(vocab_size=11, seq_len=81, num_tasks=1, task_emb_dim=512, hidden_size=512, num_heads=8,
                            expansion=4.0, H_layers=4, L_layers=4, H_cycles=2, L_cycles=2, halt_max_steps=16),
    # The agent's student on GPT-2's vocabulary. The untied 50,257 × 256 embedding and head are 25.7M parameters;
    # five blocks with a 512-wide SwiGLU (expansion 3) bring the total to 29.0M (the 29.1M ± 2 % budget). The
    # head reads only the 4 answer slots at the end of the input: action names are 1-3 GPT-2 tokens, and logits
    # over 50,257 tokens at every position would cost as much as the whole reasoning stack.
    "agent-29m": HrmConfig(vocab_size=50257, seq_len=128, answer_len=4, num_tasks=16, task_emb_dim=256,
                           hidden_size=256, num_heads=8, expansion=3.0, H_layers=3, L_layers=2, H_cycles=2,
                           L_cycles=2, halt_max_steps=8),
    # The same student for long text envs (TextWorld-style commands of up to 16 GPT-2 tokens, observations of
    # hundreds): 512 input positions and 16 answer slots, 29.1M parameters (positions are rotary). It is a
    # separate preset so the default envs keep their short inputs; with `lengths`, short rows cost the same in both.
    # Its commands name things from the input ("take the latchkey from the mantelpiece"), so its answer head also
    # copies (copy_head): on 8.8k TextWorld decisions one epoch reached 87 % held-out agreement with it, 44 % without.
    "agent-29m-long": HrmConfig(vocab_size=50257, seq_len=512, answer_len=16, num_tasks=16, task_emb_dim=256,
                                hidden_size=256, num_heads=8, expansion=3.0, H_layers=3, L_layers=2, H_cycles=2,
                                L_cycles=2, halt_max_steps=8, copy_head=True),
}


@dataclass
class Carry:
    """The ACT state carried from one segment to the next, one row per example in the batch."""

    z_H: torch.Tensor  # (B, P+T, D) high-level state, full width whatever the rows' lengths
    z_L: torch.Tensor  # (B, P+T, D) low-level state
    steps: torch.Tensor  # (B,) int32 segments run on the current example
    halted: torch.Tensor  # (B,) bool: the row finished; the next segment starts it on a new example
    data: dict[str, torch.Tensor] = field(default_factory=dict)  # the example each row is working on


@dataclass
class HrmOutput:
    """What one segment produces."""

    logits: torch.Tensor  # (B, output_len, V) token logits from z_H
    q_halt_logits: torch.Tensor  # (B,) fp32
    q_continue_logits: torch.Tensor  # (B,) fp32
    target_q_continue: torch.Tensor | None = None  # (B,) bootstrapped target, training only


@dataclass
class Prediction:
    """Each row's outputs at the segment where it halted (see Hrm.predict)."""

    logits: torch.Tensor  # (B, output_len, V) fp32
    steps: torch.Tensor  # (B,) int32 segments used
    q_halt_logits: torch.Tensor  # (B,) fp32
    q_continue_logits: torch.Tensor | None = None  # (B,) fp32, with bootstrap=True
    target_q_continue: torch.Tensor | None = None  # (B,) the training target for Q-continue, with bootstrap=True


class Hrm(nn.Module):
    """HRM + ACT. `forward(carry, batch)` runs one segment; `predict(batch)` runs segments until every row halts.

    A batch is a dict with "inputs" (B, T) token ids, "task_ids" (B,), for training "labels" (B, output_len), and
    optionally "lengths" (B,) int64: the real tokens at the end of each row (the rest is left padding; the answer slots
    count as real). With "lengths" only the P prefix positions and the last W token columns are computed, W =
    max(max(lengths), output_len), and padding keys are masked. Without a task prefix (task_emb_dim 0) there is no
    fixed position for the Q head, so "lengths" is ignored.
    """

    def __init__(self, config: HrmConfig):
        super().__init__()
        self.config = config
        D = config.hidden_size
        self.embed_scale = math.sqrt(D)
        embed_std = 1.0 / self.embed_scale
        self.embed_tokens = nn.Embedding(config.vocab_size, D)
        trunc_normal_(self.embed_tokens.weight, std=embed_std)
        self.lm_head = Linear(D, config.vocab_size, bias=False)
        if config.copy_head:
            self.copy_query = Linear(D, D, bias=False)
            self.copy_key = Linear(D, D, bias=False)
            self.copy_gate = Linear(D, 1, bias=True)
        self.q_head = Linear(D, 2, bias=True)
        if config.task_emb_dim > 0:
            # Zero-initialised like the seed's puzzle embedding; trained with sign-SGD (hrm.optim.SignSGD).
            self.task_emb = nn.Embedding(config.num_tasks, config.task_emb_dim)
            nn.init.zeros_(self.task_emb.weight)
        total_len = config.seq_len + config.task_emb_len
        if config.pos_encoding == "rope":
            self.rope = RotaryEmbedding(D // config.num_heads, total_len, config.rope_theta)
        else:
            self.embed_pos = nn.Parameter(trunc_normal_(torch.empty(total_len, D), std=embed_std))
        block_args = (D, config.num_heads, config.expansion, config.norm_eps)
        self.H_level = ReasoningModule(config.H_layers, *block_args)
        self.L_level = ReasoningModule(config.L_layers, *block_args)
        # Fixed (untrained) initial states that halted rows restart from.
        self.register_buffer("H_init", trunc_normal_(torch.empty(D), std=1.0))
        self.register_buffer("L_init", trunc_normal_(torch.empty(D), std=1.0))
        # Q head starts strongly negative so early training does not halt at once (as the seed does).
        with torch.no_grad():
            self.q_head.weight.zero_()
            self.q_head.bias.fill_(-5.0)

    def num_parameters(self) -> int:
        """Returns the trainable parameter count without the task-embedding table.

        The table's size is set by the dataset (one row per puzzle identifier), not the architecture; the seed keeps
        it as a buffer outside the parameter count, so the published 27,275,266 excludes it too.
        """
        task = self.task_emb.weight.numel() if self.config.task_emb_dim > 0 else 0
        return sum(p.numel() for p in self.parameters()) - task

    # --- one segment --------------------------------------------------------------------------------------------

    def _keep(self, t: torch.Tensor, width: int, dim: int = 1) -> torch.Tensor:
        """Returns t's P task-prefix entries and its last `width` entries along `dim` (t itself when that is all)."""
        P, n = self.config.task_emb_len, t.shape[dim]
        if P + width == n:
            return t
        return torch.cat((t.narrow(dim, 0, P), t.narrow(dim, n - width, width)), dim)

    def _lengths(self, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """Returns the batch's (B,) lengths, or None when it has none or the model has no task prefix."""
        return batch.get("lengths") if self.config.task_emb_len > 0 else None

    def _width(self, lengths: torch.Tensor) -> int:
        """Returns W, the token columns computed for rows of these lengths: the longest, and at least output_len."""
        W = int(lengths.max())
        if W > self.config.seq_len:
            raise ValueError(f"lengths must be at most seq_len={self.config.seq_len}, got {W}")
        return max(W, self.config.output_len)

    def _key_mask(self, lengths: torch.Tensor, W: int) -> torch.Tensor | None:
        """Returns the (B, P+W) bool mask of real keys (prefix, each row's last tokens), or None if none is padding."""
        if bool((lengths >= W).all()):
            return None
        real = torch.arange(W, device=lengths.device) >= W - lengths[:, None]  # (B, W)
        return torch.cat((real.new_ones(len(lengths), self.config.task_emb_len), real), dim=1)

    def embed(self, inputs: torch.Tensor, task_ids: torch.Tensor) -> torch.Tensor:
        """Returns the scaled input embedding (B, P+W, D) of inputs (B, W), the last W columns: task prefix, tokens."""
        x = self.embed_tokens(inputs)  # (B, W, D)
        cfg = self.config
        if cfg.task_emb_dim > 0:
            prefix = self.task_emb(task_ids)  # (B, E)
            pad = cfg.task_emb_len * cfg.hidden_size - cfg.task_emb_dim
            prefix = nn.functional.pad(prefix, (0, pad)).view(-1, cfg.task_emb_len, cfg.hidden_size)
            x = torch.cat((prefix.to(x.dtype), x), dim=1)  # (B, P+W, D)
        if cfg.pos_encoding == "learned":  # 1/sqrt(2) keeps the forward variance
            x = 0.707106781 * (x + self._keep(self.embed_pos, inputs.shape[1], dim=0))
        return self.embed_scale * x

    def embed_batch(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Returns (x (B, P+W, D), the key mask (B, P+W) bool or None): W is seq_len without "lengths"."""
        lengths = self._lengths(batch)
        if lengths is None:
            return self.embed(batch["inputs"], batch["task_ids"]), None
        W = self._width(lengths)
        return self.embed(batch["inputs"][:, -W:], batch["task_ids"]), self._key_mask(lengths, W)

    def column_ids(self, batch: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """Returns the (B, W) input tokens of `embed_batch`'s columns x (B, P+W, D): what the copy head copies."""
        inputs = batch["inputs"]
        return inputs[:, inputs.shape[1] - (x.shape[1] - self.config.task_emb_len):]

    def initial_state(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns the initial (z_H, z_L), broadcast views shaped like x (B, P+W, D); clone before writing in place."""
        return self.H_init.expand_as(x), self.L_init.expand_as(x)

    def _rope(self, width: int | None = None):
        """Returns RoPE's (cos, sin) at the prefix and last `width` (default all) token positions; None if learned."""
        if self.config.pos_encoding != "rope":
            return None
        return tuple(self._keep(t, self.config.seq_len if width is None else width, dim=0) for t in self.rope())

    def segment(self, z_H: torch.Tensor, z_L: torch.Tensor, x: torch.Tensor, mask: torch.Tensor | None = None,
                rope: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One HRM segment with the one-step gradient; returns the new (z_H, z_L), each shaped like x (B, P+W, D).

        `rope` (cos, sin), each (B, 1, P+W, Dh), gives every row its own positions (hrm.lm's digit places); by
        default the positions are the columns'."""
        # x and the states hold the prefix and the last W token columns; `mask` (B, P+W) bool marks the real keys.
        cfg = self.config
        if rope is None:
            rope = self._rope(x.shape[1] - cfg.task_emb_len)
        with torch.no_grad():
            for h in range(cfg.H_cycles):
                for l in range(cfg.L_cycles):
                    if h < cfg.H_cycles - 1 or l < cfg.L_cycles - 1:
                        z_L = self.L_level(z_L, z_H + x, rope, mask)
                if h < cfg.H_cycles - 1:
                    z_H = self.H_level(z_H, z_L, rope, mask)
        # The last L and H updates carry the gradient (one-step approximation of the fixed-point gradient).
        z_L = self.L_level(z_L, z_H + x, rope, mask)
        z_H = self.H_level(z_H, z_L, rope, mask)
        return z_H, z_L

    def answer(self, z_H: torch.Tensor, inputs: torch.Tensor | None = None,
               mask: torch.Tensor | None = None) -> torch.Tensor:
        """Returns the token logits (B, output_len, V) read from the last output_len positions of z_H (B, P+W, D).

        With `copy_head`, log-probabilities that also copy from the input: `inputs` (B, W) are the tokens of z_H's
        last W columns and `mask` (B, P+W) bool marks the real ones (None: all)."""
        slots = z_H[:, -self.config.output_len:]
        logits = self.lm_head(slots)
        if not self.config.copy_head:
            return logits
        P, K = self.config.task_emb_len, self.config.output_len
        sources = z_H[:, P:z_H.shape[1] - K]  # (B, S, D): the input tokens before the answer slots
        ids = inputs[:, :sources.shape[1]]  # (B, S)
        scores = self.copy_query(slots) @ self.copy_key(sources).transpose(1, 2)  # (B, K, S)
        scores = scores.float() / math.sqrt(self.config.hidden_size)
        if mask is not None:  # padding is not copied; a row of answer slots only copies nothing
            real = mask[:, None, P:z_H.shape[1] - K]  # (B, 1, S)
            some = real.any(-1, keepdim=True)
            attention = torch.softmax(scores.masked_fill(~real, float("-inf")).masked_fill(~some, 0.0), -1) * some
        else:
            attention = torch.softmax(scores, dim=-1)
        copied = torch.zeros_like(logits, dtype=torch.float32).scatter_add_(
            -1, ids[:, None, :].expand(-1, K, -1), attention)  # (B, K, V)
        gate = torch.sigmoid(self.copy_gate(slots).float())  # (B, K, 1): the share of the vocabulary head
        return torch.log(gate * torch.softmax(logits.float(), dim=-1) + (1 - gate) * copied + 1e-30)

    def q_values(self, z_H: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns the ACT (halt, continue) logits, each (B,) fp32, read from the first position."""
        q = self.q_head(z_H[:, 0]).float()
        return q[:, 0], q[:, 1]

    # --- ACT ----------------------------------------------------------------------------------------------------

    def initial_carry(self, batch: dict[str, torch.Tensor]) -> Carry:
        """Returns a carry whose rows are all halted, so the first segment loads the batch into every row."""
        B = batch["inputs"].shape[0]
        shape = (B, self.config.seq_len + self.config.task_emb_len, self.config.hidden_size)
        device = batch["inputs"].device
        return Carry(
            z_H=self.H_init.expand(shape).clone(),
            z_L=self.L_init.expand(shape).clone(),
            steps=torch.zeros(B, dtype=torch.int32, device=device),
            halted=torch.ones(B, dtype=torch.bool, device=device),
            data={k: torch.empty_like(v) for k, v in batch.items()},
        )

    def forward(self, carry: Carry, batch: dict[str, torch.Tensor], adaptive: bool = False,
                q_target: bool = True) -> tuple[Carry, HrmOutput]:
        """Runs one segment: halted rows restart on `batch`'s example, the others continue. Returns (carry, output).

        Training: a row halts at halt_max_steps or when Q-halt > Q-continue, after a random minimum number of steps
        with probability halt_exploration_prob; with `q_target` one more segment (no gradient) gives the
        bootstrapped Q-continue target. Evaluation: a row halts at halt_max_steps, or, with `adaptive`, as soon as
        Q-halt > Q-continue. With "lengths" the segment runs on the last W columns of the rows' current examples and
        writes them back into the carry's full-width states.
        """
        cfg = self.config
        reset = carry.halted.view(-1, 1, 1)
        full_H = torch.where(reset, self.H_init, carry.z_H)  # (B, P+T, D)
        full_L = torch.where(reset, self.L_init, carry.z_L)
        steps = torch.where(carry.halted, 0, carry.steps)
        data = {k: torch.where(carry.halted.view((-1,) + (1,) * (v.ndim - 1)), batch[k], v)
                for k, v in carry.data.items()}

        x, mask = self.embed_batch(data)  # (B, P+W, D), (B, P+W) or None
        W = x.shape[1] - cfg.task_emb_len
        z_H, z_L = self.segment(self._keep(full_H, W), self._keep(full_L, W), x, mask)  # (B, P+W, D)
        q_halt, q_continue = self.q_values(z_H)
        output = HrmOutput(self.answer(z_H, self.column_ids(data, x), mask), q_halt, q_continue)

        with torch.no_grad():
            steps = steps + 1
            is_last = steps >= cfg.halt_max_steps
            halted = is_last
            if self.training and cfg.halt_max_steps > 1:
                halted = halted | (q_halt > q_continue)
                # Exploration: some rows must run a random number of segments in [2, max] before halting.
                explore = torch.rand_like(q_halt) < cfg.halt_exploration_prob
                min_steps = explore * torch.randint_like(steps, low=2, high=cfg.halt_max_steps + 1)
                halted = halted & (steps >= min_steps)
                if q_target:
                    # Q-learning target for "continue": the next segment's value (halt if that is the last step).
                    next_halt, next_continue = self.q_values(self.segment(z_H.detach(), z_L.detach(), x, mask)[0])
                    output.target_q_continue = torch.sigmoid(
                        torch.where(is_last, next_halt, torch.maximum(next_halt, next_continue)))
            elif adaptive:
                halted = halted | (q_halt > q_continue)
        return Carry(self._write_back(full_H, z_H), self._write_back(full_L, z_L), steps, halted, data), output

    def _write_back(self, full: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Returns the detached full state (B, P+T, D) with its prefix and last W columns taken from z (B, P+W, D)."""
        z, P = z.detach(), self.config.task_emb_len
        if z.shape[1] == full.shape[1]:
            return z
        return torch.cat((z[:, :P], full[:, P:full.shape[1] - z.shape[1] + P], z[:, P:]), dim=1)

    @torch.no_grad()
    def predict(self, batch: dict[str, torch.Tensor], adaptive: bool = True, max_steps: int | None = None,
                bootstrap: bool = False) -> Prediction:
        """Runs segments until every row halts; returns each row's outputs at the segment where it halted.

        With `adaptive` a row stops once Q-halt > Q-continue; `max_steps` (default halt_max_steps) stays the bound.
        Rows that halted drop out of the batch, so later segments only compute the rows still thinking (with "lengths",
        only the columns of the longest of them). With `bootstrap` each row also runs one more segment to give
        Q-continue's training target (for an evaluation's q_continue_loss).
        """
        cfg = self.config
        max_steps = cfg.halt_max_steps if max_steps is None else max_steps
        if max_steps < 1:
            raise ValueError(f"max_steps must be at least 1, got {max_steps}")
        x, mask = self.embed_batch(batch)  # (B, P+W, D), (B, P+W) or None
        ids = self.column_ids(batch, x)  # (B, W)
        z_H, z_L = self.initial_state(x)
        lengths = self._lengths(batch)
        B = x.shape[0]
        logits = torch.empty(B, cfg.output_len, cfg.vocab_size, device=x.device)
        steps = torch.full((B,), max_steps, dtype=torch.int32, device=x.device)
        q_halt_logits = torch.empty(B, device=x.device)
        q_continue_logits = torch.empty(B, device=x.device) if bootstrap else None
        target_q_continue = torch.empty(B, device=x.device) if bootstrap else None
        active = torch.arange(B, device=x.device)
        for step in range(1, max_steps + 1):
            z_H, z_L = self.segment(z_H, z_L, x, mask)
            q_halt, q_continue = self.q_values(z_H)
            stop = torch.full_like(q_halt, step == max_steps, dtype=torch.bool)
            if adaptive:
                stop |= q_halt > q_continue
            # the head runs only for rows that answer
            logits[active[stop]] = self.answer(z_H[stop], ids[stop], None if mask is None else mask[stop]).float()
            steps[active[stop]] = step
            q_halt_logits[active[stop]] = q_halt[stop]
            if bootstrap:  # the same target as training's: the next segment's Q (halt if this was the last)
                stop_mask = None if mask is None else mask[stop]
                next_halt, next_continue = self.q_values(self.segment(z_H[stop], z_L[stop], x[stop], stop_mask)[0])
                last = step == cfg.halt_max_steps
                q_continue_logits[active[stop]] = q_continue[stop]
                target_q_continue[active[stop]] = torch.sigmoid(
                    next_halt if last else torch.maximum(next_halt, next_continue))
            keep = ~stop
            if not keep.any():
                break
            active, z_H, z_L, x, ids = active[keep], z_H[keep], z_L[keep], x[keep], ids[keep]
            if lengths is not None:  # drop the columns that are padding in every row still thinking
                lengths = lengths[keep]
                W = self._width(lengths)
                z_H, z_L, x, ids = self._keep(z_H, W), self._keep(z_L, W), self._keep(x, W), ids[:, -W:]
                mask = self._key_mask(lengths, W)
        return Prediction(logits, steps, q_halt_logits, q_continue_logits, target_q_continue)
