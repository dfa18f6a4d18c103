"""GPT-2's vocabulary, offline."""

from data.tokenizer import VOCAB_SIZE, gpt2_tokenizer, tokenizer_dir


def test_hello_world_encodes_to_gpt2_ids(tmp_path):
    tokenizer = gpt2_tokenizer(tmp_path / "tok")
    assert tokenizer("Hello world").input_ids == [15496, 995]
    assert len(tokenizer) == VOCAB_SIZE
    assert tokenizer.eos_token_id == 50256
    assert tokenizer.decode([15496, 995]) == "Hello world"


def test_a_tampered_vocabulary_file_is_replaced(tmp_path):
    folder = tokenizer_dir(tmp_path / "tok")
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer_dir(folder)
    assert (folder / "merges.txt").stat().st_size > 400_000
