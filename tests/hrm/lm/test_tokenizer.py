"""Tokenizers: round trips, one clear error for a character they cannot encode, and rebuilding from a checkpoint."""

import pytest

from hrm.lm.tokenizer import BOS_ID, EOS_ID, PAD_ID, BpeTokenizer, CharTokenizer, TokenizerError, tokenizer_from_dict


def test_char_tokenizer_round_trips_the_seed_prompt():
    tok = CharTokenizer()
    ids = tok.encode("What is 12 + 7?")
    assert len(ids) == len("What is 12 + 7?") and min(ids) > EOS_ID
    assert tok.decode([BOS_ID, *ids, EOS_ID, PAD_ID]) == "What is 12 + 7?"
    assert tokenizer_from_dict(tok.to_dict()).encode("What is 12 + 7?") == ids


def test_char_tokenizer_refuses_an_unknown_character_instead_of_inventing_an_id():
    tok = CharTokenizer()
    size = tok.vocab_size
    with pytest.raises(TokenizerError, match=r"cannot encode '×' \(character 11 of 'What is 12 × 7\?'\)"):
        tok.encode("What is 12 × 7?")
    assert tok.vocab_size == size


def test_bpe_tokenizer_trains_round_trips_and_refuses_unseen_characters(tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("the cat sat on the mat\nthe dog sat on the log\n" * 50)
    tok = BpeTokenizer.train([text], vocab_size=60)
    ids = tok.encode("the cat sat on the log")
    assert tok.decode(ids) == "the cat sat on the log"
    assert len(ids) < len("the cat sat on the log")  # merges happened
    assert (tok.pad_id, tok.bos_id, tok.eos_id) == (PAD_ID, BOS_ID, EOS_ID)
    assert tokenizer_from_dict(tok.to_dict()).encode("the dog") == tok.encode("the dog")
    with pytest.raises(TokenizerError, match="cannot encode 'z'"):
        tok.encode("the zoo")
