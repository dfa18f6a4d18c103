"""`python -m hrm.lm.generate`: a trained checkpoint answers the seed's prompt; sampling; one-line errors."""

import os
import subprocess
import sys

import pytest

from hrm.lm.engine import Generator, sample
from hrm.lm.generate import main
from tests.conftest import ROOT

pytestmark = pytest.mark.usefixtures("one_thread")


def run_module(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env=env)


@pytest.mark.slow
def test_the_generate_command_answers_what_is_12_plus_7(trained_lm, tmp_path):
    path, _ = trained_lm
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("What is 3 + 4?\nWhat is 45 + 38?\n")
    result = run_module("hrm.lm.generate", "--prompt", "What is 12 + 7?", "--dataset", "synthetic",
                        "--checkpoint", str(path), "--prompts_file", str(prompts), "--batch_size", "2")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "What is 12 + 7? 19"
    assert [line.rsplit(" ", 1)[0] for line in lines[1:]] == ["What is 3 + 4?", "What is 45 + 38?"]
    assert all(line.rsplit(" ", 1)[1].isdigit() for line in lines)


def test_generation_with_and_without_the_cache_answers_like_the_evaluation(trained_lm):
    generator = Generator.from_checkpoint(str(trained_lm[0]), "cpu")
    problems = [(a, b) for a in range(0, 100, 9) for b in range(3, 100, 11)]  # 12 × 9 sums, seen or held out
    prompts = [f"What is {a} + {b}?" for a, b in problems]
    cached = generator.generate(prompts)
    right = sum(answer == str(a + b) for answer, (a, b) in zip(cached.answers, problems, strict=True))
    assert right / len(problems) >= 0.9, cached.answers
    assert generator.generate(prompts, kv_cache=False).answers == cached.answers
    assert all(1 <= s <= 2 for s in cached.steps)
    sampled = generator.generate(prompts[:4], temperature=0.5, top_k=3, top_p=0.9, seed=0)
    assert len(sampled.answers) == 4
    assert generator.generate(prompts, max_new_tokens=12, stop_at_eos=False).answers == cached.answers  # timing


def test_sampling_filters():
    import torch

    logits = torch.tensor([[0.0, 1.0, 5.0, 2.0]])
    assert sample(logits).item() == 2
    draws = {sample(logits, 1.0, top_k=2, generator=torch.Generator().manual_seed(i)).item() for i in range(50)}
    assert draws <= {2, 3}
    assert {sample(logits, 1.0, top_p=0.5, generator=torch.Generator().manual_seed(i)).item()
            for i in range(20)} == {2}


def test_a_missing_checkpoint_is_one_line_and_exit_2(tmp_path):
    result = run_module("hrm.lm.generate", "--prompt", "What is 12 + 7?", "--checkpoint", str(tmp_path / "no.pt"))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "does not exist" in result.stderr and "Traceback" not in result.stderr


def test_an_unknown_dataset_or_character_is_one_line_and_exit_2(trained_lm, capsys):
    assert main(["--prompt", "What is 12 + 7?", "--dataset", "tinystories"]) == 2
    assert "unknown dataset 'tinystories'" in capsys.readouterr().err
    assert main(["--prompt", "What is 12 × 7?", "--checkpoint", str(trained_lm[0])]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot encode '×'" in err
