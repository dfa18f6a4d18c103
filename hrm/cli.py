"""Typed command lines: a dataclass is the configuration, its field docstrings are the --help text.

One mechanism for every entry point (habit 2 of STYLE.md). `parse_args(Args, argv)` accepts `--lr 3e-4`,
`--lr=3e-4` and, for booleans, `--dry-run` / `--no-dry-run`. Bad values end in argparse's one-line error, exit 2.
"""

import argparse
import ast
import dataclasses
import inspect
import textwrap
import typing


def field_docs(cls) -> dict[str, str]:
    """Returns {field name: the string literal written under it} for a dataclass defined in a source file."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, following in zip(body, body[1:], strict=False):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                    and isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)
                    and isinstance(following.value.value, str)):
                docs[node.target.id] = " ".join(following.value.value.split())
    return docs


def _parser_type(annotation):
    """Returns the callable argparse should convert a value with, for int/float/str and `X | None`."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    return args[0] if args else annotation


def build_parser(cls, prog: str | None = None, description: str | None = None) -> argparse.ArgumentParser:
    """Returns an ArgumentParser with one --option per field of dataclass `cls`."""
    parser = argparse.ArgumentParser(prog=prog, description=description or (cls.__doc__ or "").strip(),
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    docs = field_docs(cls)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        help_text = docs.get(f.name, " ")
        annotation = hints[f.name]
        if annotation is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default, help=help_text)
            continue
        choices = typing.get_args(annotation) if typing.get_origin(annotation) is typing.Literal else None
        kind = type(choices[0]) if choices else _parser_type(annotation)
        parser.add_argument(flag, type=kind, choices=choices, default=f.default, help=help_text,
                            metavar=None if choices else f.name.upper())
    return parser


def parse_args(cls, argv: list[str] | None = None, prog: str | None = None):
    """Returns an instance of dataclass `cls` filled from `argv` (sys.argv[1:] when None)."""
    namespace = build_parser(cls, prog).parse_args(argv)
    return cls(**vars(namespace))
