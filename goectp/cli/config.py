"""Command-line options generated from the config dataclasses, and ``--config FILE`` for a whole run.

``goectp train`` (and ``goectp pretrain``) get one option per field of :class:`goectp.models.GoeCTPConfig` and
:class:`goectp.training.TrainConfig`: ``hidden`` → ``--hidden``, ``weight_decay`` → ``--weight-decay``, a ``bool``
field → ``--symmetrize/--no-symmetrize``, ``float | None`` → a number or ``none``. The defaults are the
dataclasses' (read here, never repeated), ``Literal`` fields and the registries (``VARIANTS``, ``EXTRACTORS``) give
the choices.

A run can also come from a TOML file (or YAML, when ``pyyaml`` is installed) with up to three sections::

    [model]              # GoeCTPConfig fields
    variant = "goectp"
    hidden = 128
    [train]              # TrainConfig fields
    epochs = 200
    weight_decay = 1e-5
    [run]                # the command's other options, by their argparse name
    splits = [0, 1, 2]
    out = "runs/my-run"

Precedence: the command line, then the file, then the defaults. An unknown section or key is an error that names
it. The file's path, its sha256 and its content are recorded in every checkpoint's ``meta["run_config"]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import re
import types
import typing
from pathlib import Path
from typing import Any

#: Sections of a run config file.
SECTIONS = ("model", "train", "run")


class ConfigFileError(ValueError):
    """A run config file that cannot be read or holds an unknown section or key; the message names it."""


# ------------------------------------------------------------------------------------------------ field → option
def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def _dest(section: str, name: str) -> str:
    return f"{section}.{name}"


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    """``X | None`` → ``(X, True)``; anything else → ``(tp, False)``."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else typing.Union[tuple(rest)]), True  # noqa: UP007
    return tp, False


def _parse_scalar(kind: type, optional: bool) -> Any:
    """An argparse ``type`` converting text to ``kind`` (and ``none``/``null`` to ``None`` for optional fields)."""

    def convert(text: str) -> Any:
        if optional and text.strip().lower() in {"none", "null", "off"}:
            return None
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or (kind is float and not math.isfinite(value)):  # nan / inf: a run of NaN losses
            raise argparse.ArgumentTypeError(
                f"expected {'a finite ' if kind is float else ''}{kind.__name__}{' or none' if optional else ''}, "
                f"got {text!r}"
            )
        return value

    convert.__name__ = kind.__name__  # argparse names the type in its error messages
    return convert


def _plain(text: str) -> str:
    """Help text without reST markup: ``x`` → x, :mod:`goectp.x` → goectp.x."""
    return re.sub(r":\w+:`([^`]*)`", r"\1", text).replace("``", "")


def field_specs(cls: type) -> list[tuple[str, Any, Any]]:
    """``(name, resolved type, default)`` of each field of the dataclass ``cls``."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = dataclasses.MISSING
        out.append((f.name, hints[f.name], default))
    return out


def _help_text(cls: type) -> dict[str, str]:
    """Per-field help from ``#:`` comments or trailing ``#`` comments in the dataclass source (best effort)."""
    import inspect

    try:
        lines = inspect.getsource(cls).splitlines()
    except (OSError, TypeError):
        return {}
    helps: dict[str, str] = {}
    pending: list[str] = []
    for line in lines:
        text = line.strip()
        if text.startswith("#:"):
            pending.append(text[2:].strip())
            continue
        if ":" in text and not text.startswith(("def ", "class ", "@", '"', "#")):
            name = text.split(":", 1)[0].strip()
            if name.isidentifier():
                comment = text.split("#", 1)[1].strip() if "  # " in text else ""
                helps[name] = " ".join(pending + ([comment] if comment else []))
        pending = []
    return helps


def add_config_arguments(
    parser: argparse.ArgumentParser,
    cls: type,
    section: str,
    *,
    title: str | None = None,
    skip: typing.Iterable[str] = (),
    choices: dict[str, typing.Sequence] | None = None,
    defaults: dict[str, Any] | None = None,
    aliases: dict[str, list[tuple[str, dict]]] | None = None,
    helps: dict[str, str] | None = None,
) -> argparse._ArgumentGroup:
    """Add one option per field of the dataclass ``cls`` to ``parser`` (in an argument group ``title``).

    Args:
        parser: the (sub)command's parser.
        cls: a dataclass (``GoeCTPConfig``, ``TrainConfig``).
        section: the config-file section of these fields (``model`` / ``train``); the options' ``dest`` is
            ``<section>.<field>`` and their argparse default is ``SUPPRESS``, so the namespace holds only what was
            given on the command line (see :func:`resolve_configs`).
        skip: fields without an option (derived ones, or fixed by the command); a config file may still set them.
        choices: field → allowed values (from a registry), overriding the ``Literal`` of the annotation.
        defaults: field → a command-specific default shown in the help (used by :func:`resolve_configs`).
        aliases: field → ``[(option string, extra add_argument keywords)]``, kept for older spellings
            (``--layers`` for ``--num-layers``, ``--no-frame`` for ``--no-use-frame``).
        helps: field → help text (else the dataclass's field comment).
    """
    group = parser.add_argument_group(title or f"{cls.__name__} ({section} section of --config)")
    skip, choices, defaults = set(skip), choices or {}, defaults or {}
    notes = {**_help_text(cls), **(helps or {})}
    for name, tp, default in field_specs(cls):
        if name in skip:
            continue
        default = defaults.get(name, default)
        kind, optional = _unwrap_optional(tp)
        dest = _dest(section, name)
        note = _plain(notes.get(name, ""))
        shown = "none" if default is None else default
        if "(default:" in note:  # the comment already says it
            note, shown = note.replace("(default:", "(").replace("()", ""), shown
        kw: dict[str, Any] = {"dest": dest, "default": argparse.SUPPRESS}
        if kind is bool:
            kw["action"] = argparse.BooleanOptionalAction
            kw["help"] = f"{note} (default: {'on' if default else 'off'})".strip()
        elif typing.get_origin(kind) is typing.Literal or name in choices:
            allowed = list(choices.get(name) or typing.get_args(kind))
            kw["choices"] = allowed + ([None] if optional else [])
            kw["type"] = _parse_scalar(str, optional)
            kw["metavar"] = "{" + ",".join(map(str, allowed)) + (",none" if optional else "") + "}"
            kw["help"] = f"{note} (default: {shown})".strip()
        elif kind in (int, float, str):
            kw["type"] = _parse_scalar(kind, optional)
            kw["metavar"] = kind.__name__.upper() + ("|none" if optional else "")
            kw["help"] = f"{note} (default: {shown})".strip()
        else:  # dicts and other structured fields: config file only
            continue
        group.add_argument(_option(name), **kw)
        for option, extra in (aliases or {}).get(name, []):
            group.add_argument(option, dest=dest, default=argparse.SUPPRESS, **extra)
    return group


# ------------------------------------------------------------------------------------------------ --config FILE
#: Largest run config file read (a run config is a few hundred bytes).
MAX_CONFIG_BYTES = 1 << 20


def _loader_without_aliases(yaml: Any) -> type:
    """``yaml.SafeLoader`` refusing aliases (``*name``): nine lines of nested aliases expand to 10⁹ strings when the
    config is recorded (the "billion laughs")."""

    class NoAliasLoader(yaml.SafeLoader):
        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                mark = self.peek_event().start_mark
                raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed in a run config", mark)
            return super().compose_node(parent, index)

    return NoAliasLoader


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A TOML (``tomllib``) or YAML (``pyyaml``, if installed) file as a dict; :class:`ConfigFileError` otherwise."""
    path = Path(path)
    try:
        if path.exists() and not path.is_file():  # a folder, /dev/zero, a pipe: read forever or fail oddly
            raise ConfigFileError(f"{path}: not a regular file")
        with open(path, "rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigFileError(f"cannot read the config file {path}: {exc.strerror or exc}") from exc
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigFileError(f"{path}: larger than {MAX_CONFIG_BYTES:,} bytes; not a run config")
    suffix = path.suffix.lower()
    if suffix in {".yaml", ".yml"}:
        try:
            import yaml
        except ImportError as exc:
            raise ConfigFileError(f"{path}: reading YAML needs pyyaml (pip install pyyaml); or use TOML") from exc
        try:
            data = yaml.load(raw.decode("utf-8"), Loader=_loader_without_aliases(yaml)) or {}  # a SafeLoader
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise ConfigFileError(f"{path}: not valid YAML ({exc})") from exc
    else:
        import tomllib

        try:
            data = tomllib.loads(raw.decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigFileError(f"{path}: not valid TOML ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigFileError(f"{path}: the top level must be a table of sections {SECTIONS}")
    return data


def _run_dests(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """The parser's options that are not config fields (``dest`` without a dot), by ``dest``."""
    return {a.dest: a for a in parser._actions if "." not in a.dest and a.dest not in {"help", "config", "func"}}


def check_config(data: dict[str, Any], path: str | Path, parser: argparse.ArgumentParser) -> None:
    """Raise :class:`ConfigFileError` naming the first unknown section or key of a run config."""
    known = {**_config_fields(parser), "run": set(_run_dests(parser))}
    for section, values in data.items():
        if section not in SECTIONS:
            raise ConfigFileError(f"{path}: unknown section [{section}]; use {', '.join(f'[{s}]' for s in SECTIONS)}")
        if not isinstance(values, dict):
            raise ConfigFileError(f"{path}: [{section}] must be a table of keys, got {type(values).__name__}")
        for key, value in values.items():
            if key not in known.get(section, set()):
                raise ConfigFileError(
                    f"{path}: unknown key {key!r} in [{section}]; known keys: {', '.join(sorted(known[section]))}"
                )
            problem = _value_problem(parser, section, key, value)
            if problem:
                raise ConfigFileError(f"{path}: [{section}] {key} = {str(value)[:60]!r}: {problem}")


def _kind_problem(value: Any, kind: Any, choices: typing.Sequence | None = None) -> str | None:
    """Why ``value`` (from a config file) is not a ``kind`` (bool, int, float, str) among ``choices``, or None."""
    if kind is bool:
        ok, want = isinstance(value, bool), "true or false"
    elif kind is int:
        ok, want = isinstance(value, int) and not isinstance(value, bool), "an integer"
    elif kind is float:
        ok, want = isinstance(value, (int, float)) and not isinstance(value, bool), "a finite number"
        try:
            ok = ok and math.isfinite(value)  # TOML and YAML spell nan and inf: a run of NaN losses
        except OverflowError:  # a YAML integer too large for a float
            ok = False
    elif kind is str:
        ok, want = isinstance(value, str), "a string"
    else:  # dicts and other structured fields: their dataclass checks them
        return None
    if not ok:
        return f"expected {want}, got {type(value).__name__}"
    if choices and value not in choices:
        return f"expected one of {', '.join(map(str, choices))}"
    return None


def _value_problem(parser: argparse.ArgumentParser, section: str, key: str, value: Any) -> str | None:
    """Why a config file's ``value`` for ``key`` cannot be used (the type of its dataclass field or option), or None."""
    actions = {a.dest: a for a in parser._actions}
    if section == "run":
        action = actions[key]
        if action.nargs == 0:  # a flag
            return _kind_problem(value, bool)
        if value is None and action.default is None:
            return None
        many = action.nargs in ("+", "*")
        if many and not isinstance(value, list):
            return "expected a list"
        kind = action.type if action.type in (int, float) else str  # other types (Path, ...) convert text
        for item in value if many else [value]:
            problem = _kind_problem(item, kind, action.choices)
            if problem:
                return problem
        return None
    kind, optional = _unwrap_optional({n: t for n, t, _ in field_specs(_classes(parser)[section])}[key])
    if value is None:
        return None if optional else "expected a value, got null"
    action = actions.get(_dest(section, key))
    choices = [c for c in action.choices if c is not None] if action is not None and action.choices else None
    if typing.get_origin(kind) is typing.Literal:
        kind, choices = str, choices or list(typing.get_args(kind))
    return _kind_problem(value, kind, choices)


def _config_fields(parser: argparse.ArgumentParser) -> dict[str, set[str]]:
    """Every field of the dataclasses behind the parser's generated options (incl. those without an option)."""
    return {section: {name for name, _, _ in field_specs(cls)} for section, cls in _classes(parser).items()}


def _classes(parser: argparse.ArgumentParser) -> dict[str, type]:
    return getattr(parser, "_goectp_config_classes", {})


class ConfigFileAction(argparse.Action):
    """``--config FILE``: reads and checks the file as soon as it is parsed (errors name the file and key)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        try:
            data = read_config_file(values)
            check_config(data, values, parser)
        except ConfigFileError as exc:
            parser.error(str(exc))
        raw = Path(values).read_bytes()
        content = json.loads(json.dumps(data, default=str))  # plain types only (TOML dates → text): weights_only
        setattr(
            namespace,
            self.dest,
            {"path": str(Path(values).resolve()), "sha256": hashlib.sha256(raw).hexdigest(), "content": content},
        )
        namespace._config_defaults = {a.dest: a.default for a in parser._actions}  # for the [run] section


def add_config_file_option(parser: argparse.ArgumentParser, classes: dict[str, type]) -> None:
    """Add ``--config FILE`` to ``parser`` (``classes``: section → dataclass, e.g. ``{"model": GoeCTPConfig}``)."""
    parser._goectp_config_classes = dict(classes)
    parser.add_argument(
        "--config",
        metavar="FILE",
        action=ConfigFileAction,
        default=None,
        help="a TOML (or YAML, with pyyaml) file with [model], [train] and [run] sections for the "
        "whole run; options given on the command line win (recorded in every checkpoint)",
    )


def resolve_configs(
    args: argparse.Namespace, defaults: dict[str, dict[str, Any]] | None = None
) -> dict[str, dict[str, Any]]:
    """The field values for each section: command line, then ``--config`` file, then ``defaults[section]``.

    Only fields set somewhere are returned (the dataclass supplies the rest). The ``run`` section's values are
    written into ``args`` for the options still at their parser default (so an option given on the command line
    with exactly its default value does not override the file).
    """
    file = (getattr(args, "config", None) or {}).get("content", {})
    out: dict[str, dict[str, Any]] = {}
    for section in ("model", "train"):
        values = dict((defaults or {}).get(section, {}))
        values.update(file.get(section, {}))
        prefix = section + "."
        values.update({k[len(prefix) :]: v for k, v in vars(args).items() if k.startswith(prefix)})
        out[section] = values
    parser_defaults = getattr(args, "_config_defaults", {})
    for key, value in file.get("run", {}).items():
        if getattr(args, key, None) == parser_defaults.get(key):
            setattr(args, key, value)
    return out


def run_config_record(args: argparse.Namespace) -> dict[str, Any] | None:
    """What goes into the checkpoints' ``meta["run_config"]``: the file's path, sha256 and content, or ``None``."""
    return getattr(args, "config", None)


# ------------------------------------------------------------------------------------------------ train / pretrain
#: Help for GoeCTPConfig fields without a field comment.
MODEL_HELP = {
    "variant": "backbone: goectp (MLP messages), mat (Matformer attention), icom (+ lattice-vector edge layer)",
    "hidden": "hidden size d",
    "num_layers": "message layers (none: the paper's depth, 1 for goectp, 4 for mat/icom)",
    "heads": "attention heads of the mat/icom layers",
    "num_rbf": "Gaussians of the distance expansion",
    "rbf_cutoff": "largest RBF centre (Å)",
    "atom_features": "element inputs: CGCNN descriptors or a learned embedding",
    "pooling": "graph readout",
    "cell_reduction": "the lattice the polar frame is computed from",
    "symmetrize": "point-group symmetrisation of the predicted tensor",
    "positive_definite": "predict I + s F A Aᵀ Fᵀ (eigenvalues >= 1)",
    "use_frame": "the polar frame (off: the non-equivariant baseline)",
    "k_neighbors": "neighbours per atom in the crystal graph",
    "node_features": "foundation-model per-atom features added to the node inputs (pip install '.[foundation]')",
}


def add_training_options(parser: argparse.ArgumentParser, command: str = "train") -> None:
    """The ``GoeCTPConfig`` and ``TrainConfig`` options of ``goectp train`` / ``goectp pretrain``, and ``--config``.

    ``node_feature_dim`` follows from ``--node-features``, ``extra`` is config-file only, ``head`` is fixed by the
    command (pretrain: scalar, without symmetrisation or the positive-definite head). Choices come from the
    registries (:data:`goectp.models.VARIANTS`, :data:`goectp.features.registry.EXTRACTORS`,
    :data:`goectp.data.dielectric.TARGETS`).
    """
    from goectp.data.dielectric import TARGETS
    from goectp.features.registry import EXTRACTORS
    from goectp.models import VARIANTS, GoeCTPConfig
    from goectp.training.config import LOSSES, TrainConfig

    pretrain = command == "pretrain"
    model_skip = {"node_feature_dim", "extra", "head"} | ({"symmetrize", "positive_definite"} if pretrain else set())
    add_config_arguments(
        parser,
        GoeCTPConfig,
        "model",
        title="model (GoeCTPConfig; [model] in --config)",
        skip=model_skip,
        choices={"variant": VARIANTS, "node_features": sorted(EXTRACTORS)},
        helps=MODEL_HELP,
        aliases={
            "num_layers": [
                ("--layers", {"type": _parse_scalar(int, True), "metavar": "INT|none", "help": "= --num-layers"})
            ],
            "use_frame": [("--no-frame", {"action": "store_false", "help": "= --no-use-frame"})],
        },
    )
    add_config_arguments(
        parser,
        TrainConfig,
        "train",
        title="training (TrainConfig; [train] in --config)",
        skip={"target", "max_abs"} if pretrain else set(),
        choices={"target": TARGETS, "loss": LOSSES},
        defaults=PRETRAIN_DEFAULTS["train"] if pretrain else None,
        aliases={
            "augment_rotations": [("--augment", {"action": "store_true", "help": "= --augment-rotations"})],
            **({"progress": [("--quiet", {"action": "store_false", "help": "= --no-progress"})]} if pretrain else {}),
        },
    )
    add_config_file_option(parser, {"model": GoeCTPConfig, "train": TrainConfig})


#: Where ``goectp pretrain`` differs from the dataclasses: the paper pretrains for 500 epochs.
PRETRAIN_DEFAULTS: dict[str, dict[str, Any]] = {"train": {"epochs": 500}}


def training_configs(args: argparse.Namespace, command: str = "train") -> tuple[Any, dict[str, Any]]:
    """``(GoeCTPConfig, TrainConfig keywords)`` of a ``train`` / ``pretrain`` command line (and its ``--config``).

    The TrainConfig keywords leave ``split_seed`` / ``seed`` to the caller when they were not given: ``train`` loops
    over ``--splits`` and ``seed`` follows the split seed unless set.
    """
    from goectp.features.registry import feature_dim
    from goectp.models import GoeCTPConfig

    values = resolve_configs(args, PRETRAIN_DEFAULTS if command == "pretrain" else None)
    model = dict(values["model"])
    if model.get("node_features") and "node_feature_dim" not in model:
        model["node_feature_dim"] = feature_dim(model["node_features"])
    return GoeCTPConfig(**model), values["train"]
