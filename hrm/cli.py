"""Typed command lines: a dataclass is the configuration, its field docstrings are the --help text.

One mechanism for every entry point. `parse_args(Args, argv)` accepts `--lr 3e-4`,
`--lr=3e-4` and, for booleans, `--dry-run` / `--no-dry-run`. Bad values end in argparse's one-line error, exit 2.
`split_key_values` + `typed_values` read the seeds' `key=value` form into the same dataclasses.

A field may declare its allowed range next to its type, `num_envs: Annotated[int, Range(1)] = 8`: the parser refuses
a value outside it with one line naming the flag and the range (exit 2), and `check_ranges(config)` refuses it for a
config built in code.
"""

import argparse
import ast
import dataclasses
import difflib
import inspect
import textwrap
import types
import typing
from dataclasses import dataclass


@dataclass(frozen=True)
class Range:
    """The values a number may take: at least `low` (more than it when `open_low`), at most `high`."""

    low: float | None = None
    high: float | None = None
    open_low: bool = False

    def problem(self, value) -> str | None:
        """Returns what is wrong with `value` ("must be ≥ 1"), or None when it lies in the range."""
        if value is None:
            return None
        if self.low is not None and (value <= self.low if self.open_low else value < self.low):
            return f"must be {'>' if self.open_low else '≥'} {self.low:g}" + (
                f" and ≤ {self.high:g}" if self.high is not None else "")
        if self.high is not None and value > self.high:
            return f"must be ≤ {self.high:g}" + (f" and ≥ {self.low:g}" if self.low is not None else "")
        return None


def _split_annotation(annotation) -> tuple[object, Range | None]:
    """Returns (the type, its Range or None) of a possibly Annotated field type."""
    if typing.get_origin(annotation) is typing.Annotated:
        base, *extras = typing.get_args(annotation)
        return base, next((e for e in extras if isinstance(e, Range)), None)
    return annotation, None


def check_ranges(config) -> None:
    """Raises ValueError naming the first field of dataclass instance `config` outside its declared Range."""
    hints = typing.get_type_hints(type(config), include_extras=True)
    for f in dataclasses.fields(config):
        _, allowed = _split_annotation(hints[f.name])
        problem = allowed.problem(getattr(config, f.name)) if allowed else None
        if problem:
            raise ValueError(f"--{f.name.replace('_', '-')} {problem}, got {getattr(config, f.name)}")


def _checked(convert, allowed: Range):
    """Returns an argparse type that converts with `convert` and refuses values outside `allowed`."""

    def parse(text: str):
        value = convert(text)
        problem = allowed.problem(value)
        if problem:
            raise argparse.ArgumentTypeError(f"{problem}, got {text}")
        return value

    parse.__name__ = getattr(convert, "__name__", "value")
    return parse


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


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (what is wrong, where to look) and exit 2, without the usage."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: {message} (--help lists the options)\n")


def build_parser(cls, prog: str | None = None, description: str | None = None) -> argparse.ArgumentParser:
    """Returns an ArgumentParser with one --option per field of dataclass `cls`."""
    parser = OneLineParser(prog=prog, description=description or (cls.__doc__ or "").strip(),
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    docs = field_docs(cls)
    hints = typing.get_type_hints(cls, include_extras=True)
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        help_text = docs.get(f.name, " ").replace("%", "%%")  # argparse formats help: "70 %" must stay text
        annotation, allowed = _split_annotation(hints[f.name])
        if annotation is bool or set(typing.get_args(annotation)) == {bool, type(None)}:  # bool | None: unset
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default, help=help_text)
            continue
        choices = typing.get_args(annotation) if typing.get_origin(annotation) is typing.Literal else None
        kind = type(choices[0]) if choices else _parser_type(annotation)
        if allowed is not None:
            kind = _checked(kind, allowed)
        parser.add_argument(flag, type=kind, choices=choices, default=f.default, help=help_text,
                            metavar=None if choices else f.name.upper())
    return parser


def parse_args(cls, argv: list[str] | None = None, prog: str | None = None):
    """Returns an instance of dataclass `cls` filled from `argv` (sys.argv[1:] when None)."""
    namespace = build_parser(cls, prog).parse_args(argv)
    return cls(**vars(namespace))


# --- key=value overrides (the seeds' form: `python -m hrm.pretrain data_path=… lr=1e-4 arch.hidden_size=256`) ------


class ConfigError(ValueError):
    """A command-line setting is unknown or malformed; the message says which and what is allowed."""


def split_key_values(argv: list[str]) -> dict[str, str]:
    """Returns {key: raw value} from ["key=value", ...]; raises ConfigError on anything else or a repeated key."""
    out: dict[str, str] = {}
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep or not key:
            raise ConfigError(f"expected key=value, got {arg!r} (see --help)")
        if key in out:
            raise ConfigError(f"{key} is given twice")
        out[key] = value
    return out


def _convert(key: str, text: str, annotation):
    """Returns `text` converted to `annotation` (bool, int, float, str, Literal, X | None)."""
    if typing.get_origin(annotation) is typing.Literal:
        choices = typing.get_args(annotation)
        for choice in choices:
            if text == str(choice):
                return choice
        raise ConfigError(f"{key} must be one of {', '.join(map(str, choices))}, got {text!r}")
    args = typing.get_args(annotation)
    if type(None) in args:
        if text.lower() in ("none", "null", ""):
            return None
        return _convert(key, text, _parser_type(annotation))
    if annotation is bool:
        if text.lower() in ("true", "1", "yes", "on"):
            return True
        if text.lower() in ("false", "0", "no", "off"):
            return False
        raise ConfigError(f"{key} must be true or false, got {text!r}")
    try:
        return annotation(text)
    except (TypeError, ValueError):
        raise ConfigError(f"{key} must be {annotation.__name__}, got {text!r}") from None


def typed_values(cls, raw: dict[str, str], prefix: str = "") -> dict:
    """Returns `raw` converted to the types of dataclass `cls`'s fields; raises ConfigError for an unknown key."""
    hints = typing.get_type_hints(cls)
    settable = {f.name for f in dataclasses.fields(cls) if hints[f.name] in (bool, int, float, str)
                or typing.get_origin(hints[f.name]) in (typing.Literal, typing.Union, types.UnionType)}
    out = {}
    for key, text in raw.items():
        if key in hints and key not in settable:
            raise ConfigError(f"{prefix}{key} is not one value; set its fields as {prefix}{key}.KEY=VALUE")
        if key not in settable:
            close = difflib.get_close_matches(key, sorted(settable), n=1)
            hint = f"; did you mean {prefix}{close[0]}?" if close else "; see --help"
            raise ConfigError(f"unknown setting {prefix}{key}{hint}")
        out[key] = _convert(prefix + key, text, hints[key])
    return out


def key_value_help(config, prog: str, sections: dict[str, object] | None = None) -> str:
    """Returns a --help text listing every key=value setting of dataclass instance `config` with its current value
    and docstring, then those of each `sections` instance under its prefix (e.g. "arch")."""
    lines = [f"usage: {prog} key=value ...", "", (type(config).__doc__ or "").strip()]
    for prefix, obj in [("", config), *((f"{name}.", value) for name, value in (sections or {}).items())]:
        lines.append("")
        docs = field_docs(type(obj))
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if isinstance(value, dict):
                continue
            lines.append(f"  {prefix}{f.name}={'none' if value is None else value}")
            lines.extend("      " + line for line in textwrap.wrap(docs.get(f.name, ""), 100))
    return "\n".join(lines)
