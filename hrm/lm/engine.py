"""Inference for an HRM × LM: the encoder and HRM run once per prompt (halting adaptively), then the decoder writes
the answer token by token with a KV cache (self-attention keys and values grow by one position per token; the
cross-attention keys and values of the prompt are computed once). Greedy, or sampled with temperature, top-k and
top-p. `kv_cache=False` recomputes the whole decoder for every new token (the comparison bench/hrm_lm.py makes).
"""

from dataclasses import dataclass

import torch

from hrm.checkpoint import CheckpointError, load_checkpoint
from hrm.device import pick_device
from hrm.lm.arithmetic import ArithmeticConfig, ArithmeticTask
from hrm.lm.model import HrmLm, LmConfig
from hrm.lm.text import TextConfig, TextTask
from hrm.lm.tokenizer import tokenizer_from_dict


@dataclass
class Generation:
    """What `Generator.generate` returns, one entry per prompt."""

    answers: list[str]  # the decoded answers, in reading order (a reversed answer turned back)
    tokens: list[list[int]]  # the generated ids, <eos> excluded
    steps: list[int]  # HRM segments each prompt used


def sample(logits: torch.Tensor, temperature: float = 0.0, top_k: int = 0, top_p: float = 1.0,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """Returns the next id (B,) from logits (B, V): the argmax at temperature 0, else a draw from the tempered
    distribution kept to the top_k ids and the smallest set of ids whose probability reaches top_p."""
    if temperature == 0:
        return logits.argmax(-1)
    logits = logits.float() / temperature
    if top_k:
        kth = logits.topk(min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        ordered, order = logits.sort(dim=-1, descending=True)
        probs = ordered.softmax(-1)
        drop = probs.cumsum(-1) - probs > top_p  # ids after the nucleus is full (the first id always stays)
        logits = logits.scatter(-1, order, ordered.masked_fill(drop, float("-inf")))
    return torch.multinomial(logits.softmax(-1), 1, generator=generator).squeeze(-1)


class Generator:
    """Answers prompts with a trained HRM × LM and the dataset that reads its prompts."""

    def __init__(self, model: HrmLm, task: ArithmeticTask | TextTask, dataset: str = "synthetic"):
        self.model = model.eval()
        self.task = task
        self.dataset = dataset
        self.device = next(model.parameters()).device

    @classmethod
    def from_checkpoint(cls, path: str, device: str | None = None) -> "Generator":
        """Returns a Generator for a checkpoint of `python -m hrm.lm.train`; raises CheckpointError if unusable."""
        state = load_checkpoint(path)
        try:
            model = HrmLm(LmConfig(**state["model_config"]))
            model.load_state_dict(state["model"])
            data, tokenizer = state["dataset"], tokenizer_from_dict(state["tokenizer"])
            if data["name"] == "text":
                task = TextTask.for_generation(TextConfig(**data["config"]), tokenizer, tuple(data["shape"]))
            else:
                task = ArithmeticTask(ArithmeticConfig(**{**data["config"], "heldout_size": 1, "ood_size": 1}),
                                      tokenizer)
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            raise CheckpointError(f"checkpoint {path} was not written by python -m hrm.lm.train "
                                  f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else e})") from None
        return cls(model.to(pick_device(device)), task, state["dataset"]["name"])

    @torch.no_grad()
    def generate(self, prompts: list[str], max_new_tokens: int = 16, temperature: float = 0.0, top_k: int = 0,
                 top_p: float = 1.0, kv_cache: bool = True, adaptive: bool = True, stop_at_eos: bool = True,
                 seed: int | None = None) -> Generation:
        """Returns the answers to `prompts` (one batch). Raises TokenizerError or ValueError for a prompt the
        checkpoint cannot read; `stop_at_eos=False` always writes max_new_tokens (for timing)."""
        model, cfg = self.model, self.model.config
        if max_new_tokens > cfg.max_positions - 1:
            raise ValueError(f"max_new_tokens must be at most {cfg.max_positions - 1} for this checkpoint")
        batch = self.task.encode_prompts(prompts)
        if batch["inputs"].shape[1] > cfg.prompt_len:
            raise ValueError(f"a prompt is {batch['inputs'].shape[1]} tokens; this checkpoint reads at most "
                             f"{cfg.prompt_len}")
        batch = {k: v.to(self.device) for k, v in batch.items()}
        generator = None if seed is None else torch.Generator(self.device).manual_seed(seed)
        memory, mask, steps = model.encode(batch, adaptive=adaptive)  # once per prompt
        B = len(prompts)
        offsets = batch["answer_offset"]
        tokens = torch.full((B, 1), self.task.tokenizer.bos_id, dtype=torch.long, device=self.device)
        done = torch.zeros(B, dtype=torch.bool, device=self.device)
        kv = model.cross_kv(memory, batch["digit_pos"]) if kv_cache else None
        cache = None
        eos, pad = self.task.tokenizer.eos_id, self.task.tokenizer.pad_id
        for t in range(max_new_tokens):
            if kv_cache:
                logits, cache = model.decode(tokens[:, -1:], t, offsets, kv, mask, cache)
            else:  # everything again: cross-attention keys and values, and every earlier position
                logits, _ = model.decode(tokens, 0, offsets, model.cross_kv(memory, batch["digit_pos"]), mask)
            next_id = sample(logits[:, -1], temperature, top_k, top_p, generator)
            next_id = next_id.masked_fill(done, pad)
            tokens = torch.cat((tokens, next_id[:, None]), dim=1)
            done |= next_id == eos
            if stop_at_eos and bool(done.all()):
                break
        out = []
        for row in tokens[:, 1:].tolist():
            out.append(row[:row.index(eos)] if eos in row else [i for i in row if i != pad])
        answers = [self.task.read_answer(self.task.tokenizer.decode(ids)) for ids in out]
        return Generation(answers, out, steps.tolist())
