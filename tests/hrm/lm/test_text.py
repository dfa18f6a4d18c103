"""`--dataset text`: a prompt<TAB>answer file, a BPE tokenizer stored in the checkpoint, generation from it."""

import pytest
from rich.console import Console

from hrm import load_checkpoint
from hrm.lm.engine import Generator
from hrm.lm.text import TextConfig, TextTask
from hrm.lm.train import TrainArgs, main, train

pytestmark = pytest.mark.usefixtures("one_thread")

PAIRS = [(f"what colour is the {thing}?", colour) for thing, colour in
         [("sky", "blue"), ("grass", "green"), ("snow", "white"), ("coal", "black"), ("sun", "yellow"),
          ("blood", "red"), ("sea", "blue"), ("leaf", "green"), ("milk", "white"), ("night", "black"),
          ("lemon", "yellow"), ("rose", "red"), ("ink", "black"), ("cloud", "white"), ("frog", "green")]]


@pytest.fixture
def qa_file(tmp_path):
    path = tmp_path / "qa.tsv"
    path.write_text("".join(f"{p}\t{a}\n" for p, a in PAIRS))
    return path


def test_pairs_split_by_prompt_and_encode(qa_file):
    task = TextTask(TextConfig(str(qa_file), vocab_size=80))
    assert len(task.heldout) + len(task.train) == len(PAIRS) and not set(task.heldout) & set(task.train)
    batch = task.batch_at(0, 4)
    assert batch["inputs"].shape == (4, task.train_shape[0]) and not batch["digit_pos"].any()


def test_train_on_a_text_file_and_generate_from_the_checkpoint(qa_file, tmp_path):
    args = TrainArgs(dataset="text", text_file=str(qa_file), bpe_vocab=80, steps=3, val_every=3, batch_size=8,
                     hidden_size=32, num_heads=2, save_dir=str(tmp_path / "run"), device="cpu")
    train(args, Console(quiet=True))
    state = load_checkpoint(tmp_path / "run" / "last.pt")
    assert state["tokenizer"]["kind"] == "bpe" and state["dataset"]["name"] == "text"
    generator = Generator.from_checkpoint(str(tmp_path / "run" / "last.pt"), "cpu")
    out = generator.generate(["what colour is the sky?", "what colour is the rose?"], max_new_tokens=4)
    assert len(out.answers) == 2 and all(isinstance(a, str) for a in out.answers)


def test_text_without_a_file_is_one_line_and_exit_2(capsys):
    assert main(["--dataset", "text"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--text_file" in err
