"""Transformer building blocks of the HRM: LeCun-normal linears, RMSNorm, RoPE, non-causal attention, SwiGLU.

Follows the original HRM (Wang et al. 2025, `models/layers.py`): bias-free projections initialised with a truncated
LeCun normal, weight-free RMSNorm applied after each residual (post-norm), rotary position embeddings, and a SwiGLU
MLP whose width is rounded up to a multiple of 256.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn


def _normal_pdf(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


def trunc_normal_(tensor: torch.Tensor, std: float) -> torch.Tensor:
    """Fill `tensor` in place from N(0, std) truncated at ±2 std, with the std corrected for truncation; returns it."""
    if std == 0:
        return tensor.zero_()
    # A normal truncated at ±2σ has a smaller std than σ; widen σ so the result has exactly `std` (as the seed does).
    z = math.erf(2 / math.sqrt(2))
    truncated_std = math.sqrt(1 - 2 * (2 * _normal_pdf(2.0)) / z)
    scale = std / truncated_std
    with torch.no_grad():
        nn.init.trunc_normal_(tensor, mean=0.0, std=scale, a=-2 * scale, b=2 * scale)
    return tensor


class Linear(nn.Linear):
    """nn.Linear with the seed's truncated LeCun-normal init (std = 1/sqrt(fan_in)) and zero bias."""

    def reset_parameters(self) -> None:
        trunc_normal_(self.weight, std=1.0 / math.sqrt(self.in_features))
        if self.bias is not None:
            nn.init.zeros_(self.bias)


def rms_norm(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Weight-free RMSNorm computed in fp32; returns a tensor of x's dtype."""
    x32 = x.float()
    return (x32 * torch.rsqrt(x32.square().mean(-1, keepdim=True) + eps)).to(x.dtype)


class RotaryEmbedding(nn.Module):
    """Precomputed RoPE cos/sin tables for positions [0, max_len) (Su et al. 2021)."""

    def __init__(self, head_dim: int, max_len: int, base: float = 10000.0):
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
        freqs = torch.outer(torch.arange(max_len, dtype=torch.float32), inv_freq)  # (T, Dh/2)
        angles = torch.cat((freqs, freqs), dim=-1)  # (T, Dh)
        # Not persistent: derived from the config, so checkpoints stay free of it.
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (cos, sin), each (T, head_dim)."""
        return self.cos, self.sin


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x (B, H, T, Dh) by the RoPE angles; returns a tensor of x's shape and dtype."""
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return (x * cos.to(x.dtype) + rotated * sin.to(x.dtype)).to(x.dtype)


class Attention(nn.Module):
    """Multi-head, non-causal self-attention: every position sees every other (or every unmasked key)."""

    def __init__(self, hidden_size: int, num_heads: int):
        super().__init__()
        assert hidden_size % num_heads == 0, "hidden_size must be divisible by num_heads"
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads
        self.qkv_proj = Linear(hidden_size, 3 * hidden_size, bias=False)
        self.o_proj = Linear(hidden_size, hidden_size, bias=False)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        """Returns the attention output (B, T, D); `mask` (B, T) bool marks the keys each row may read (None: all)."""
        B, T, D = x.shape
        qkv = self.qkv_proj(x).view(B, T, 3, self.num_heads, self.head_dim)
        qkv = qkv.permute(2, 0, 3, 1, 4)  # (3, B, H, T, Dh)
        q, k, v = qkv.unbind(0)
        if rope is not None:
            cos, sin = rope
            if cos.ndim == 2:  # one table for every row; (B, 1, T, Dh) tables give each row its own positions
                cos, sin = cos[:T], sin[:T]
            q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        attn_mask = None if mask is None else mask[:, None, None, :]  # (B, 1, 1, T): broadcast over heads, queries
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=False)  # (B, H, T, Dh)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, D))


def swiglu_width(hidden_size: int, expansion: float) -> int:
    """Returns the SwiGLU inner width: 2/3 of expansion × hidden (a plain MLP's FLOPs), rounded up to 256s."""
    width = round(expansion * hidden_size * 2 / 3)
    return -(width // -256) * 256


class SwiGLU(nn.Module):
    """Gated MLP: down(silu(gate(x)) * up(x)) (Shazeer 2020)."""

    def __init__(self, hidden_size: int, expansion: float):
        super().__init__()
        width = swiglu_width(hidden_size, expansion)
        self.gate_up_proj = Linear(hidden_size, 2 * width, bias=False)
        self.down_proj = Linear(width, hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up_proj(x).chunk(2, dim=-1)
        return self.down_proj(F.silu(gate) * up)


class Block(nn.Module):
    """Post-norm transformer block: x = norm(x + attn(x)); x = norm(x + mlp(x))."""

    def __init__(self, hidden_size: int, num_heads: int, expansion: float, norm_eps: float):
        super().__init__()
        self.attn = Attention(hidden_size, num_heads)
        self.mlp = SwiGLU(hidden_size, expansion)
        self.norm_eps = norm_eps

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        x = rms_norm(x + self.attn(x, rope, mask), self.norm_eps)
        return rms_norm(x + self.mlp(x), self.norm_eps)


class ReasoningModule(nn.Module):
    """A stack of blocks that updates a state given an injected input: z ← blocks(z + injection)."""

    def __init__(self, num_layers: int, hidden_size: int, num_heads: int, expansion: float, norm_eps: float):
        super().__init__()
        self.layers = nn.ModuleList(Block(hidden_size, num_heads, expansion, norm_eps) for _ in range(num_layers))

    def forward(self, z: torch.Tensor, injection: torch.Tensor, rope, mask: torch.Tensor | None = None) -> torch.Tensor:
        z = z + injection
        for layer in self.layers:
            z = layer(z, rope, mask)
        return z
