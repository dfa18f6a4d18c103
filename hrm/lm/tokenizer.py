"""Tokenizers of the HRM × LM: characters for arithmetic, a `tokenizers` BPE for text files.

Both share three special ids (0 pad, 1 bos, 2 eos), `encode`/`decode`, and `to_dict()`, which every checkpoint
stores so that generation reads prompts exactly as training did. A character a tokenizer cannot encode raises one
`TokenizerError` naming it; no tokenizer ever invents a new id for it (the published hybrid's `encode()` did, so
"What is 12 + 7?" became an id the model had never seen).
"""

import string

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

SPECIALS = ("<pad>", "<bos>", "<eos>")
PAD_ID, BOS_ID, EOS_ID = 0, 1, 2

# Digits, the operators and the letters of "What is 12 + 7?"-style questions.
ARITHMETIC_ALPHABET = string.digits + " +-*=?.," + string.ascii_letters


class TokenizerError(ValueError):
    """A text holds a character the tokenizer cannot encode; the message names it and what is allowed."""


class CharTokenizer:
    """One id per character of a fixed alphabet, after the special ids."""

    kind = "char"
    pad_id, bos_id, eos_id = PAD_ID, BOS_ID, EOS_ID

    def __init__(self, alphabet: str = ARITHMETIC_ALPHABET):
        if len(set(alphabet)) != len(alphabet):
            raise ValueError("the alphabet repeats a character")
        self.alphabet = alphabet
        self.ids = {ch: i + len(SPECIALS) for i, ch in enumerate(alphabet)}

    @property
    def vocab_size(self) -> int:
        """Returns the number of ids (specials included)."""
        return len(SPECIALS) + len(self.alphabet)

    def encode(self, text: str) -> list[int]:
        """Returns the ids of `text`; raises TokenizerError at the first character outside the alphabet."""
        try:
            return [self.ids[ch] for ch in text]
        except KeyError:
            i = next(i for i, ch in enumerate(text) if ch not in self.ids)
            raise TokenizerError(f"cannot encode {text[i]!r} (character {i} of {text!r}); this tokenizer knows "
                                 f"digits, letters and {''.join(c for c in self.alphabet if not c.isalnum())!r}"
                                 ) from None

    def decode(self, ids: list[int]) -> str:
        """Returns the text of `ids`, special ids left out."""
        n = len(SPECIALS)
        return "".join(self.alphabet[i - n] for i in ids if n <= i < self.vocab_size)

    def token_text(self, i: int) -> str:
        """Returns the text of one id ("" for a special id)."""
        return self.decode([i])

    def to_dict(self) -> dict:
        """Returns what a checkpoint stores to rebuild this tokenizer."""
        return {"kind": self.kind, "alphabet": self.alphabet}


class BpeTokenizer:
    """A byte-pair-encoding tokenizer (Hugging Face `tokenizers`) trained on text files, with an <unk> id that
    `encode` refuses rather than emits."""

    kind = "bpe"
    pad_id, bos_id, eos_id = PAD_ID, BOS_ID, EOS_ID

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer
        self.unk_id = tokenizer.token_to_id("<unk>")

    @classmethod
    def train(cls, files: list[str], vocab_size: int = 1000) -> "BpeTokenizer":
        """Returns a BPE tokenizer trained on the text `files` (spaces kept as "▁", so decode inverts encode)."""
        tok = Tokenizer(models.BPE(unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[*SPECIALS, "<unk>"],
                                      show_progress=False)
        tok.train([str(f) for f in files], trainer)
        return cls(tok)

    @property
    def vocab_size(self) -> int:
        """Returns the number of ids (specials included)."""
        return self.tokenizer.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        """Returns the ids of `text`; raises TokenizerError if any character is outside the trained alphabet."""
        encoding = self.tokenizer.encode(text, add_special_tokens=False)
        for i, (start, end) in zip(encoding.ids, encoding.offsets, strict=True):
            if i == self.unk_id:
                raise TokenizerError(f"cannot encode {text[start:end]!r} (character {start} of {text!r}); it never "
                                     f"occurs in the text this tokenizer was trained on")
        return encoding.ids

    def decode(self, ids: list[int]) -> str:
        """Returns the text of `ids`, special ids left out."""
        return self.tokenizer.decode([i for i in ids if i >= len(SPECIALS)])

    def token_text(self, i: int) -> str:
        """Returns the text of one id ("" for a special id)."""
        return "" if i < len(SPECIALS) else self.tokenizer.id_to_token(i)

    def to_dict(self) -> dict:
        """Returns what a checkpoint stores to rebuild this tokenizer."""
        return {"kind": self.kind, "json": self.tokenizer.to_str()}


def tokenizer_from_dict(state: dict) -> CharTokenizer | BpeTokenizer:
    """Returns the tokenizer a checkpoint stored with `to_dict()`."""
    if state.get("kind") == "char":
        return CharTokenizer(state["alphabet"])
    if state.get("kind") == "bpe":
        return BpeTokenizer(Tokenizer.from_str(state["json"]))
    raise ValueError(f"unknown tokenizer kind {state.get('kind')!r}")
