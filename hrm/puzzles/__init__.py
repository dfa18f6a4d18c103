"""Reasoning-puzzle datasets for HRM pretraining: Sudoku rules and generator, the builder, the memory-mapped dataset."""

from hrm.puzzles.dataset import DatasetError, PuzzleDataset, PuzzleMetadata, load_metadata
from hrm.puzzles.sudoku import augment, consistent, difficulty, generate, has_unique_solution, solve, valid_solutions

__all__ = ["DatasetError", "PuzzleDataset", "PuzzleMetadata", "augment", "consistent", "difficulty", "generate",
           "has_unique_solution", "load_metadata", "solve", "valid_solutions"]
