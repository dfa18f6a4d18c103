"""HRM × LM: our HRM reads the whole prompt, a small causal decoder cross-attends to its token states and writes
the answer.

The decoder's memory is the HRM's z_H plus the input embedding x (a residual path): the tokens and their digit
places reach the decoder as they are whatever segment the HRM halted at, and the HRM's states add what it
reasoned. Without it, deep supervision over ACT segments learned addition several times more slowly here.

The encoder is `hrm.model.Hrm` itself (H/L cycles, one-step gradient, the fixed initial states, the Q head on the
first position, here the <bos> token); its own token head is dropped because the decoder writes the answer. Each
ACT segment is decoded with teacher forcing, so `forward(carry, batch)` has the contract `hrm.trainer.Trainer`
drives (one segment per step, deep supervision, carry detached between segments) and `hrm.losses.act_loss` scores
(token cross-entropy + Q-halt against "the whole answer is right" + Q-continue against the bootstrapped target).
With `bypass_hrm` the same blocks run once as a plain encoder (L blocks then H blocks, full gradient, one segment):
the ablation with exactly the same parameters.

Digits carry Abacus indices (see hrm.lm.arithmetic) from one table shared by encoder digits and decoder positions,
and the decoder's attention rotates queries and keys by those indices (RoPE): decoder position t and every operand
digit of significance t share a position, as in position coupling (Cho et al. 2024, "Position Coupling"), so the
digits to add sit at relative distance 0 whatever the numbers' lengths.
Generation (hrm.lm.generate) runs `encode` once per prompt, halting adaptively, then the decoder with a KV cache.
"""

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from hrm.layers import Linear, RotaryEmbedding, SwiGLU, apply_rotary, rms_norm, trunc_normal_
from hrm.model import Carry, Hrm, HrmConfig, HrmOutput

PAD_ID, BOS_ID = 0, 1  # hrm.lm.tokenizer's special ids
KvCache = list[tuple[torch.Tensor, torch.Tensor] | None]
Rope = tuple[torch.Tensor, torch.Tensor]  # cos, sin, each (B, 1, T, Dh): per-row positions, broadcast over heads


@dataclass(frozen=True)
class LmConfig:
    """Architecture of an HRM × LM. Saved in every checkpoint."""

    vocab_size: int
    prompt_len: int
    """The most prompt tokens the encoder reads (<bos> included)."""
    hidden_size: int = 128
    num_heads: int = 4
    expansion: float = 2.0
    H_layers: int = 1
    L_layers: int = 1
    H_cycles: int = 2
    L_cycles: int = 2
    halt_max_steps: int = 2
    halt_exploration_prob: float = 0.1
    decoder_layers: int = 2
    max_positions: int = 64
    """Rows of the Abacus / decoder position table (the longest answer the decoder can write is one less)."""
    bypass_hrm: bool = False
    """Run the H and L blocks once as a plain encoder (the same-parameter ablation), no ACT."""
    encoder_positions: str = "sequence"
    """The encoder's rotary positions: "sequence" (token order) or "abacus" (digit places; every non-digit at 0)."""
    norm_eps: float = 1e-5

    def __post_init__(self):
        if self.encoder_positions not in ("sequence", "abacus"):
            raise ValueError(f"encoder_positions must be sequence or abacus, got {self.encoder_positions!r}")

    task_emb_dim = 0  # not a field: hrm.trainer.Trainer reads it, and the LM has no per-task table

    def hrm_config(self) -> HrmConfig:
        """Returns the config of the HRM encoder (one segment when bypassed)."""
        return HrmConfig(vocab_size=self.vocab_size, seq_len=self.prompt_len, hidden_size=self.hidden_size,
                         num_heads=self.num_heads, expansion=self.expansion, H_layers=self.H_layers,
                         L_layers=self.L_layers, H_cycles=self.H_cycles, L_cycles=self.L_cycles,
                         halt_max_steps=1 if self.bypass_hrm else self.halt_max_steps,
                         halt_exploration_prob=self.halt_exploration_prob, norm_eps=self.norm_eps)

    def to_dict(self) -> dict:
        """Returns the config as a plain dict (what checkpoints store)."""
        return asdict(self)


def _heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """Returns x (B, T, D) split into heads (B, H, T, D/H)."""
    B, T, D = x.shape
    return x.view(B, T, num_heads, D // num_heads).transpose(1, 2)


def _merge(y: torch.Tensor) -> torch.Tensor:
    """Returns heads (B, H, T, Dh) merged back to (B, T, H·Dh)."""
    B, H, T, Dh = y.shape
    return y.transpose(1, 2).reshape(B, T, H * Dh)


class CausalSelfAttention(nn.Module):
    """Causal self-attention whose keys and values can be cached across generation steps."""

    def __init__(self, hidden_size: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.qkv_proj = Linear(hidden_size, 3 * hidden_size, bias=False)
        self.o_proj = Linear(hidden_size, hidden_size, bias=False)

    def forward(self, x: torch.Tensor, rope: Rope, cache: tuple[torch.Tensor, torch.Tensor] | None = None):
        """Returns (output (B, t, D), the keys and values so far); with `cache`, x holds only the new positions."""
        q, k, v = (_heads(t, self.num_heads) for t in self.qkv_proj(x).chunk(3, dim=-1))  # (B, H, t, Dh)
        q, k = apply_rotary(q, *rope), apply_rotary(k, *rope)
        if cache is not None:
            k, v = torch.cat((cache[0], k), dim=2), torch.cat((cache[1], v), dim=2)
        # New positions follow every cached one, so only a block of several new positions needs the causal mask.
        causal = x.shape[1] > 1
        if causal and cache is not None and cache[0].shape[2] > 0:
            raise ValueError("several new positions after a non-empty cache are not supported")
        y = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        return self.o_proj(_merge(y)), (k, v)


class CrossAttention(nn.Module):
    """Attention from decoder positions to the encoder's token states; their keys and values are computed once."""

    def __init__(self, hidden_size: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        # Biases give queries and keys a part that does not depend on the token: rotated by the Abacus indices,
        # it alone scores a fixed relative significance (the digits to add, or the ones just below for the carry).
        self.q_proj = Linear(hidden_size, hidden_size, bias=True)
        self.kv_proj = Linear(hidden_size, 2 * hidden_size, bias=True)
        self.o_proj = Linear(hidden_size, hidden_size, bias=False)

    def memory_kv(self, memory: torch.Tensor, rope: Rope) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns the keys (rotated by the prompt's Abacus indices) and values, each (B, H, S, Dh), of the encoder
        states memory (B, S, D)."""
        k, v = self.kv_proj(memory).chunk(2, dim=-1)
        return apply_rotary(_heads(k, self.num_heads), *rope), _heads(v, self.num_heads)

    def forward(self, x: torch.Tensor, rope: Rope, kv: tuple[torch.Tensor, torch.Tensor],
                mask: torch.Tensor | None):
        """Returns the output (B, t, D); `mask` (B, S) bool marks the real prompt tokens (None: all)."""
        attn_mask = None if mask is None else mask[:, None, None, :]
        q = apply_rotary(_heads(self.q_proj(x), self.num_heads), *rope)
        y = F.scaled_dot_product_attention(q, *kv, attn_mask=attn_mask)
        return self.o_proj(_merge(y))


class DecoderBlock(nn.Module):
    """Post-norm decoder block like the HRM's: causal self-attention, cross-attention, SwiGLU, RMSNorm after each."""

    def __init__(self, hidden_size: int, num_heads: int, expansion: float, norm_eps: float):
        super().__init__()
        self.self_attn = CausalSelfAttention(hidden_size, num_heads)
        self.cross_attn = CrossAttention(hidden_size, num_heads)
        self.mlp = SwiGLU(hidden_size, expansion)
        self.norm_eps = norm_eps

    def forward(self, x, rope, kv, mask, cache=None):
        """Returns (x (B, t, D), this block's self-attention keys and values)."""
        y, cache = self.self_attn(x, rope, cache)
        x = rms_norm(x + y, self.norm_eps)
        x = rms_norm(x + self.cross_attn(x, rope, kv, mask), self.norm_eps)
        return rms_norm(x + self.mlp(x), self.norm_eps), cache


class HrmLm(nn.Module):
    """HRM encoder × causal decoder. `forward(carry, batch)` runs one ACT segment and decodes it (training);
    `encode(batch)` runs segments until every row halts and returns the token states the decoder reads.

    A batch holds "inputs" (B, T) prompt ids (<bos> first, right padding), "digit_pos" (B, T) Abacus indices,
    "answer_offset" (B,) and, for training, "labels" (B, A): the answer ids and <eos>, −100 after.
    """

    def __init__(self, config: LmConfig):
        super().__init__()
        self.config = config
        self.hrm = Hrm(config.hrm_config())
        self.hrm.lm_head = None  # the decoder writes the answer
        D = config.hidden_size
        self.positions = nn.Embedding(config.max_positions, D)
        trunc_normal_(self.positions.weight, std=1.0 / math.sqrt(D))
        self.rope = RotaryEmbedding(D // config.num_heads, config.max_positions)
        self.decoder = nn.ModuleList(DecoderBlock(D, config.num_heads, config.expansion, config.norm_eps)
                                     for _ in range(config.decoder_layers))
        self.head = Linear(D, config.vocab_size, bias=False)

    def num_parameters(self) -> int:
        """Returns the trainable parameter count (equal with and without bypass_hrm)."""
        return sum(p.numel() for p in self.parameters())

    # --- encoder ------------------------------------------------------------------------------------------------

    def embed_prompt(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Returns (x (B, T, D): token + Abacus embedding, the real-token mask (B, T) or None when none is padding)."""
        inputs = batch["inputs"]
        x = self.hrm.embed(inputs, None) + self.hrm.embed_scale * self.positions(self._index(batch["digit_pos"]))
        mask = inputs != PAD_ID
        return x, None if bool(mask.all()) else mask

    def _index(self, positions: torch.Tensor) -> torch.Tensor:
        return positions.clamp(max=self.config.max_positions - 1)

    def _rope_at(self, positions: torch.Tensor) -> Rope:
        """Returns RoPE's (cos, sin), each (B, 1, T, Dh), at per-row positions (B, T)."""
        index = self._index(positions)
        return self.rope.cos[index][:, None], self.rope.sin[index][:, None]

    def encoder_rope(self, batch: dict[str, torch.Tensor]) -> Rope | None:
        """Returns the encoder's per-row rotary tables at the digit places ("abacus"), or None (token order)."""
        return self._rope_at(batch["digit_pos"]) if self.config.encoder_positions == "abacus" else None

    def encode_segment(self, z_H: torch.Tensor, z_L: torch.Tensor, x: torch.Tensor, mask: torch.Tensor | None,
                       rope: Rope | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One HRM segment (one-step gradient); bypassed, one pass of the L then the H blocks. Returns (z_H, z_L)."""
        if not self.config.bypass_hrm:
            return self.hrm.segment(z_H, z_L, x, mask, rope)
        if rope is None:
            rope = self.hrm._rope(x.shape[1])
        z = x
        for layer in [*self.hrm.L_level.layers, *self.hrm.H_level.layers]:
            z = layer(z, rope, mask)
        return z, z

    @torch.no_grad()
    def encode(self, batch: dict[str, torch.Tensor], adaptive: bool = True,
               max_steps: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """Returns (memory (B, T, D): z_H where each row halted + the input embedding, the mask (B, T) or None,
        steps (B,) int32).

        A row halts at max_steps (default halt_max_steps) or, with `adaptive`, once Q-halt > Q-continue; halted rows
        drop out, so later segments compute only the rows still thinking.
        """
        max_steps = max_steps or self.hrm.config.halt_max_steps
        x, mask = self.embed_prompt(batch)  # (B, T, D)
        rope = self.encoder_rope(batch)
        z_H, z_L = self.hrm.initial_state(x)
        B = x.shape[0]
        memory = torch.empty_like(x)
        steps = torch.full((B,), max_steps, dtype=torch.int32, device=x.device)
        active, row_mask = torch.arange(B, device=x.device), mask
        for step in range(1, max_steps + 1):
            z_H, z_L = self.encode_segment(z_H, z_L, x, row_mask, rope)
            stop = torch.full((len(active),), step == max_steps, dtype=torch.bool, device=x.device)
            if adaptive:
                q_halt, q_continue = self.hrm.q_values(z_H)
                stop |= q_halt > q_continue
            memory[active[stop]] = (z_H + x)[stop]
            steps[active[stop]] = step
            keep = ~stop
            if not keep.any():
                break
            active, z_H, z_L, x = active[keep], z_H[keep], z_L[keep], x[keep]
            row_mask = None if row_mask is None else row_mask[keep]
            rope = None if rope is None else (rope[0][keep], rope[1][keep])
        return memory, mask, steps

    # --- decoder ------------------------------------------------------------------------------------------------

    def cross_kv(self, memory: torch.Tensor, digit_pos: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Returns every decoder block's cross-attention keys and values of memory (B, S, D), whose tokens have
        the Abacus indices digit_pos (B, S)."""
        rope = self._rope_at(digit_pos)
        return [block.cross_attn.memory_kv(memory, rope) for block in self.decoder]

    def decode(self, tokens: torch.Tensor, start: int, offsets: torch.Tensor, kv: list, mask: torch.Tensor | None,
               cache: KvCache | None = None) -> tuple[torch.Tensor, KvCache]:
        """Returns (logits (B, t, V), the self-attention cache) for decoder inputs tokens (B, t) at answer positions
        start..start+t−1; with `cache` (one entry per block) tokens continue the cached positions."""
        pos = 1 + start + torch.arange(tokens.shape[1], device=tokens.device) + offsets[:, None]  # (B, t)
        h = self.hrm.embed_scale * (self.hrm.embed_tokens(tokens) + self.positions(self._index(pos)))
        rope = self._rope_at(pos)
        cache = cache or [None] * len(self.decoder)
        new_cache = []
        for block, block_kv, block_cache in zip(self.decoder, kv, cache, strict=True):
            h, block_cache = block(h, rope, block_kv, mask, block_cache)
            new_cache.append(block_cache)
        return self.head(h), new_cache

    def teacher_forced(self, memory: torch.Tensor, mask: torch.Tensor | None,
                       batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Returns the logits (B, A, V) of every answer position given the true previous tokens (batch's labels)."""
        labels = batch["labels"]
        previous = torch.cat((torch.full_like(labels[:, :1], BOS_ID), labels[:, :-1]), dim=1)
        previous = previous.masked_fill(previous < 0, PAD_ID)
        kv = self.cross_kv(memory, batch["digit_pos"])
        return self.decode(previous, 0, batch["answer_offset"], kv, mask)[0]

    # --- ACT training -------------------------------------------------------------------------------------------

    def initial_carry(self, batch: dict[str, torch.Tensor]) -> Carry:
        """Returns a carry whose rows are all halted, so the first segment loads the batch into every row."""
        B, T = batch["inputs"].shape
        shape = (B, T, self.config.hidden_size)
        device = batch["inputs"].device
        return Carry(z_H=self.hrm.H_init.expand(shape).clone(), z_L=self.hrm.L_init.expand(shape).clone(),
                     steps=torch.zeros(B, dtype=torch.int32, device=device),
                     halted=torch.ones(B, dtype=torch.bool, device=device),
                     data={k: torch.empty_like(v) for k, v in batch.items()})

    def forward(self, carry: Carry, batch: dict[str, torch.Tensor], adaptive: bool = False,
                q_target: bool = True) -> tuple[Carry, HrmOutput]:
        """Runs and decodes one segment: halted rows restart on `batch`'s example. Returns (carry, output).

        Halting as `Hrm.forward`: in training a row halts at halt_max_steps or when Q-halt > Q-continue (after a
        random minimum number of segments with probability halt_exploration_prob), and with `q_target` one more
        segment without gradient gives the bootstrapped Q-continue target.
        """
        cfg = self.hrm.config
        reset = carry.halted.view(-1, 1, 1)
        z_H = torch.where(reset, self.hrm.H_init, carry.z_H)  # (B, T, D)
        z_L = torch.where(reset, self.hrm.L_init, carry.z_L)
        steps = torch.where(carry.halted, 0, carry.steps)
        data = {k: torch.where(carry.halted.view((-1,) + (1,) * (v.ndim - 1)), batch[k], v)
                for k, v in carry.data.items()}

        x, mask = self.embed_prompt(data)
        rope = self.encoder_rope(data)
        z_H, z_L = self.encode_segment(z_H, z_L, x, mask, rope)
        q_halt, q_continue = self.hrm.q_values(z_H)
        logits = self.teacher_forced(z_H + x, mask, data)  # (B, A, V): memory = HRM states + input
        output = HrmOutput(logits, q_halt, q_continue)

        with torch.no_grad():
            steps = steps + 1
            is_last = steps >= cfg.halt_max_steps
            halted = is_last
            if self.training and cfg.halt_max_steps > 1:
                halted = halted | (q_halt > q_continue)
                explore = torch.rand_like(q_halt) < cfg.halt_exploration_prob
                min_steps = explore * torch.randint_like(steps, low=2, high=cfg.halt_max_steps + 1)
                halted = halted & (steps >= min_steps)
                if q_target:
                    next_halt, next_continue = self.hrm.q_values(self.encode_segment(z_H, z_L, x, mask, rope)[0])
                    output.target_q_continue = torch.sigmoid(
                        torch.where(is_last, next_halt, torch.maximum(next_halt, next_continue)))
            elif adaptive:
                halted = halted | (q_halt > q_continue)
        return Carry(z_H.detach(), z_L.detach(), steps, halted, data), output
