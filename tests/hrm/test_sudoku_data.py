"""Sudoku rules, the generator's guarantees, augmentation validity, the CSV reader and the dataset builder."""

import json

import numpy as np
import pytest

from hrm.puzzles.build import BuildArgs, PuzzleSourceError, build, main, read_sudoku_csv
from hrm.puzzles.sudoku import augment, consistent, difficulty, generate, has_unique_solution, solve, valid_solutions

# A published puzzle (Project Euler 96, grid 01) and its solution.
QUESTION = "003020600900305001001806400008102900700000008006708200002609500800203009005010300"
ANSWER = "483921657967345821251876493548132976729564138136798245372689514814253769695417382"


def grid(text: str) -> np.ndarray:
    return (np.frombuffer(text.encode(), np.uint8) - ord("0")).reshape(9, 9)


def test_solver_finds_the_one_solution_and_sees_ambiguity():
    result = solve(grid(QUESTION))
    assert len(result.solutions) == 1 and np.array_equal(result.solutions[0], grid(ANSWER))
    ambiguous = grid(QUESTION).copy()
    ambiguous[ambiguous > 0] = 0
    ambiguous[0, :8] = grid(ANSWER)[0, :8]
    assert len(solve(ambiguous, limit=2).solutions) == 2
    assert not has_unique_solution(ambiguous)


def test_validity_check_rejects_broken_grids():
    good = grid(ANSWER)
    swapped = good.copy()
    swapped[0, [0, 1]] = swapped[0, [1, 0]]  # rows still hold 1-9, but two columns now repeat a digit
    assert valid_solutions(np.stack([good, swapped, grid(QUESTION)])).tolist() == [True, False, False]


@pytest.mark.parametrize("givens", [26, 45, 70])
def test_generated_puzzles_have_the_requested_givens_and_a_unique_solution(givens):
    rng = np.random.default_rng(givens)
    for _ in range(3):
        question, answer, backtracks = generate(rng, givens)
        assert (question > 0).sum() == givens
        assert valid_solutions(answer) and consistent(question, answer)
        assert has_unique_solution(question)
        assert backtracks == difficulty(question)


def test_backtrack_knob_selects_easy_or_hard_puzzles():
    rng = np.random.default_rng(0)
    easy = [generate(rng, 30, max_backtracks=0)[0] for _ in range(2)]
    hard = [generate(rng, 24, min_backtracks=10)[0] for _ in range(2)]
    assert [difficulty(q) for q in easy] == [0, 0]
    assert min(difficulty(q) for q in hard) >= 10


def test_impossible_difficulty_is_a_clear_error():
    with pytest.raises(ValueError, match="17"):
        generate(np.random.default_rng(0), 12)
    with pytest.raises(ValueError, match="wider backtrack range"):
        generate(np.random.default_rng(0), 75, min_backtracks=1, max_attempts=3)


def test_every_augmented_grid_is_a_valid_solution_of_its_augmented_question():
    rng = np.random.default_rng(0)
    question, answer = grid(QUESTION), grid(ANSWER)
    questions, answers = augment(question, answer, 500, rng)  # (500, 9, 9) each
    assert valid_solutions(answers).all()
    assert consistent(questions, answers).all()
    assert ((questions > 0).sum((1, 2)) == (question > 0).sum()).all()  # same number of givens
    for q, a in zip(questions[:20], answers[:20], strict=True):
        assert np.array_equal(solve(q).solutions[0], a)  # still a puzzle with exactly this solution
    assert len({a.tobytes() for a in answers}) == 500  # the symmetries really vary


def test_csv_reader_takes_dots_or_zeros_and_filters_by_rating(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("source,question,answer,rating\n"
                    f"a,{QUESTION.replace('0', '.')},{ANSWER},3\n"
                    f"b,{QUESTION},{ANSWER},10\n")
    questions, answers = read_sudoku_csv(path)
    assert questions.shape == answers.shape == (2, 9, 9)
    assert np.array_equal(questions[0], grid(QUESTION)) and np.array_equal(questions[1], grid(QUESTION))
    assert len(read_sudoku_csv(path, min_rating=5)[0]) == 1


def test_csv_reader_names_the_bad_line(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text(f"source,question,answer,rating\na,{QUESTION},{ANSWER},0\nb,{QUESTION[:-1]},{ANSWER},0\n")
    with pytest.raises(PuzzleSourceError, match=r"train.csv:3: question and answer must be 81 digits"):
        read_sudoku_csv(path)
    wrong = ANSWER[:2] + ANSWER[3] + ANSWER[2] + ANSWER[4:]
    path.write_text(f"source,question,answer,rating\na,{QUESTION},{wrong},0\n")
    with pytest.raises(PuzzleSourceError, match="not a valid solution"):
        read_sudoku_csv(path)


def test_builder_writes_the_seed_layout_with_valid_augmentations(sudoku_dir):
    train = json.loads((sudoku_dir / "train" / "dataset.json").read_text())
    assert (train["vocab_size"], train["seq_len"], train["pad_id"], train["num_puzzle_identifiers"]) == (11, 81, 0, 1)
    assert (train["total_groups"], train["total_examples"]) == (16, 128)
    inputs = np.load(sudoku_dir / "train" / "all__inputs.npy")  # (128, 81) tokens
    labels = np.load(sudoku_dir / "train" / "all__labels.npy")
    assert inputs.shape == labels.shape == (128, 81)
    assert inputs.min() >= 1 and inputs.max() <= 10 and labels.min() >= 2 and labels.max() <= 10
    assert ((inputs == 1).sum(1) == 81 - 60).all()  # blanks are token 1
    assert np.array_equal(np.load(sudoku_dir / "train" / "all__group_indices.npy"), np.arange(0, 129, 8))
    # Every training example, augmented or not, is a valid solution that keeps its question's givens.
    questions, answers = (inputs - 1).reshape(-1, 9, 9), (labels - 1).reshape(-1, 9, 9)
    assert valid_solutions(answers).all() and consistent(questions, answers).all()

    test = json.loads((sudoku_dir / "test" / "dataset.json").read_text())
    assert (test["total_groups"], test["total_examples"]) == (16, 16)  # the test split is not augmented
    test_inputs = np.load(sudoku_dir / "test" / "all__inputs.npy")
    originals = {row.tobytes() for row in inputs[::8]}  # the un-augmented first member of each group
    assert not originals & {row.tobytes() for row in test_inputs}


def test_builder_subsamples_and_reads_csv_folders(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(6):
        q, a, _ = generate(rng, 50)
        question, answer = ("".join(map(str, g.reshape(-1))) for g in (q, a))
        rows.append(f"gen{i},{question.replace('0', '.')},{answer},{i}")
    for split in ("train", "test"):
        (tmp_path / f"{split}.csv").write_text("source,question,answer,rating\n" + "\n".join(rows) + "\n")
    meta = build(BuildArgs(output_dir=str(tmp_path / "out"), csv_dir=str(tmp_path), subsample_size=3, num_aug=2,
                           min_difficulty=1))
    assert (meta["train"]["total_groups"], meta["train"]["total_examples"]) == (3, 9)
    assert meta["test"]["total_examples"] == 5  # ratings 1..5 pass min_difficulty=1


def test_builder_cli_reports_a_missing_csv_in_one_line(tmp_path, capsys):
    assert main(["--csv-dir", str(tmp_path / "nowhere"), "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("hrm.puzzles.build: error:") and "train.csv does not exist" in err
    assert len(err.splitlines()) == 1
