"""The rules of 9×9 Sudoku: validity, a solver that counts solutions, a unique-solution generator, symmetries.

Grids are numpy arrays of shape (9, 9) (or (N, 9, 9)) holding digits 1-9 and 0 for a blank. The solver is a
bitmask depth-first search with naked-single propagation and most-constrained-cell branching; it counts solutions
up to a limit (2 proves uniqueness) and its dead ends ("backtracks") rate a puzzle's difficulty.
"""

from dataclasses import dataclass

import numpy as np

_ALL = 0x3FE  # bits 1..9: every digit still possible
_ROW = [i // 9 for i in range(81)]
_COL = [i % 9 for i in range(81)]
_BOX = [(i // 27) * 3 + (i % 9) // 3 for i in range(81)]
_POPCOUNT = [bin(m).count("1") for m in range(1 << 10)]
_DIGITS_OF = [[d for d in range(1, 10) if m >> d & 1] for m in range(1 << 10)]


def valid_solutions(grids: np.ndarray) -> np.ndarray:
    """Returns, per grid in (N, 9, 9) (or one (9, 9)), whether every row, column and box holds the digits 1-9."""
    grids = np.asarray(grids)
    g = grids.reshape(-1, 9, 9).astype(np.int64)
    boxes = g.reshape(-1, 3, 3, 3, 3).transpose(0, 1, 3, 2, 4).reshape(-1, 9, 9)  # (N, box, cell in box)
    ok = (g >= 1).all((1, 2)) & (g <= 9).all((1, 2))
    for units in (g, g.transpose(0, 2, 1), boxes):
        ok &= (np.sort(units, axis=-1) == np.arange(1, 10)).all((1, 2))
    return ok if grids.ndim == 3 else ok[0]


def consistent(questions: np.ndarray, answers: np.ndarray) -> np.ndarray:
    """Returns, per pair, whether the answer keeps every given (non-zero) digit of the question."""
    questions, answers = np.asarray(questions), np.asarray(answers)
    return ((questions == 0) | (questions == answers)).reshape(-1, 81).all(-1).reshape(questions.shape[:-2])


@dataclass
class Solve:
    """What a search found: up to `limit` solutions (each (9, 9) uint8) and the dead ends it hit on the way."""

    solutions: list[np.ndarray]
    backtracks: int


def solve(grid: np.ndarray, limit: int = 2, rng: np.random.Generator | None = None) -> Solve:
    """Returns up to `limit` solutions of `grid` and the search's dead ends; digits are tried in random order
    when `rng` is given, else in ascending order (a deterministic difficulty rating)."""
    cells = [int(v) for v in np.asarray(grid).reshape(81)]
    rows, cols, boxes = [0] * 9, [0] * 9, [0] * 9
    for i, d in enumerate(cells):
        if d:
            bit = 1 << d
            if (rows[_ROW[i]] | cols[_COL[i]] | boxes[_BOX[i]]) & bit:
                return Solve([], 0)  # the givens already clash
            rows[_ROW[i]] |= bit
            cols[_COL[i]] |= bit
            boxes[_BOX[i]] |= bit
    found: list[list[int]] = []
    backtracks = _search(cells, rows, cols, boxes, limit, rng, found)
    return Solve([np.array(s, dtype=np.uint8).reshape(9, 9) for s in found], backtracks)


def _search(cells, rows, cols, boxes, limit, rng, found) -> int:
    """Fills `found` with solutions (up to `limit`); returns the number of dead ends met."""
    while True:  # place naked singles until none is left, remembering the most constrained open cell
        best, best_mask, best_count, placed = -1, 0, 10, False
        for i in range(81):
            if cells[i]:
                continue
            r, c, b = _ROW[i], _COL[i], _BOX[i]
            mask = ~(rows[r] | cols[c] | boxes[b]) & _ALL
            count = _POPCOUNT[mask]
            if count == 0:
                return 1
            if count == 1:
                cells[i] = _DIGITS_OF[mask][0]
                rows[r] |= mask
                cols[c] |= mask
                boxes[b] |= mask
                placed = True
            elif count < best_count:
                best, best_mask, best_count = i, mask, count
        if not placed:
            break
    if best < 0:
        found.append(cells)
        return 0
    digits = _DIGITS_OF[best_mask]
    if rng is not None:
        digits = [digits[j] for j in rng.permutation(len(digits))]
    dead_ends = 0
    r, c, b = _ROW[best], _COL[best], _BOX[best]
    for d in digits:
        bit = 1 << d
        branch = cells.copy()
        branch[best] = d
        rows2, cols2, boxes2 = rows.copy(), cols.copy(), boxes.copy()
        rows2[r] |= bit
        cols2[c] |= bit
        boxes2[b] |= bit
        dead_ends += _search(branch, rows2, cols2, boxes2, limit, rng, found)
        if len(found) >= limit:
            break
    return dead_ends


def has_unique_solution(grid: np.ndarray) -> bool:
    """Returns True when `grid` has exactly one solution."""
    return len(solve(grid, limit=2).solutions) == 1


def difficulty(grid: np.ndarray) -> int:
    """Returns the deterministic solver's dead ends on `grid` (finding the solution and proving it unique)."""
    return solve(grid, limit=2).backtracks


def random_solution(rng: np.random.Generator) -> np.ndarray:
    """Returns a uniformly shuffled complete grid (9, 9) uint8."""
    return solve(np.zeros((9, 9), np.uint8), limit=1, rng=rng).solutions[0]


def generate(rng: np.random.Generator, givens: int, min_backtracks: int = 0, max_backtracks: int | None = None,
             max_attempts: int = 200) -> tuple[np.ndarray, np.ndarray, int]:
    """Returns (question, answer, backtracks): a puzzle with exactly `givens` clues and one solution, whose
    difficulty (solver dead ends) lies in [min_backtracks, max_backtracks].

    Clues are removed from a random complete grid in random order, each removal kept only while the solution stays
    unique. Raises ValueError when no such puzzle turns up in `max_attempts` grids.
    """
    if not 17 <= givens <= 81:
        raise ValueError(f"givens must lie in [17, 81] (no 9×9 Sudoku with fewer than 17 clues is unique), "
                         f"got {givens}")
    for _ in range(max_attempts):
        answer = random_solution(rng)
        question = answer.reshape(81).copy()
        filled = 81
        for i in rng.permutation(81):
            if filled == givens:
                break
            question[i] = 0
            if has_unique_solution(question):
                filled -= 1
            else:
                question[i] = answer.flat[i]
        if filled != givens:
            continue
        backtracks = difficulty(question)
        if backtracks >= min_backtracks and (max_backtracks is None or backtracks <= max_backtracks):
            return question.reshape(9, 9), answer, backtracks
    raise ValueError(f"no unique puzzle with {givens} givens and {min_backtracks}..{max_backtracks} backtracks "
                     f"turned up in {max_attempts} attempts; allow more givens or a wider backtrack range")


def augment(question: np.ndarray, answer: np.ndarray, count: int,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Returns `count` random validity-preserving transforms of (question, answer): two (count, 9, 9) arrays.

    As the seed's build_sudoku_dataset.py: relabel the digits (a blank stays 0), transpose with probability 1/2,
    permute the three bands and the rows inside each band, and the three stacks and the columns inside each. The
    question and the answer of a copy get the same transform.
    """
    digit_maps = np.concatenate((np.zeros((count, 1), np.uint8),
                                 rng.permuted(np.tile(np.arange(1, 10, dtype=np.uint8), (count, 1)), axis=1)), 1)
    transpose = rng.random(count) < 0.5

    def line_order() -> np.ndarray:  # (count, 9): shuffled blocks of three, shuffled lines inside each block
        blocks = rng.permuted(np.tile(np.arange(3), (count, 1)), axis=1)  # (count, 3)
        inner = rng.permuted(np.tile(np.arange(3), (count, 3, 1)), axis=2)  # (count, 3, 3)
        return (blocks[:, :, None] * 3 + inner).reshape(count, 9)

    rows, cols = line_order(), line_order()

    def transform(grid: np.ndarray) -> np.ndarray:
        grid = np.asarray(grid)
        g = np.where(transpose[:, None, None], grid.T[None], grid[None])  # (count, 9, 9)
        g = np.take_along_axis(g, rows[:, :, None], axis=1)
        g = np.take_along_axis(g, cols[:, None, :], axis=2)
        return np.take_along_axis(digit_maps, g.reshape(count, 81), axis=1).reshape(count, 9, 9)

    return transform(question), transform(answer)
