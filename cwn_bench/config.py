"""Typed experiment configs: YAML + dotted ``KEY=VALUE`` overrides + sweeps.

A config file is nested YAML (``model: {name: mlp, method: cwn}``) read with a safe YAML
loader (:func:`load_yaml`: YAML 1.2 floats such as ``1e-3``, aliases bounded) into the
dataclasses below; every key is checked (an unknown key names the file, the key and the
valid keys; a wrong type names the expected type; a value outside the range declared
with its key, ``Annotated[int, Range(1, 1 << 20)]``, names the bound).  ``sweep:`` maps
dotted keys to lists; :func:`expand_sweep` yields their cartesian product.
:func:`config_hash` identifies an experiment across seeds (seed and name left out);
:func:`sweep_hash` identifies a whole sweep (seed and sweep lists included).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import re
import types
import typing
import unicodedata
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml

from cwn_bench.errors import UserError, brief


class ConfigError(UserError):
    """A config file, override or sweep that does not validate; the message says where."""


# --------------------------------------------------------------------- value checks in the schema

class RangeError(ConfigError):
    """A value of the right type that its key refuses (out of range, not finite, not a
    plain name, not one line)."""


@dataclass(frozen=True)
class Range:
    """The interval a numeric key's values must lie in, declared with the key itself:
    ``epochs: Annotated[int, Range(1, 1 << 20)] = 1`` (``low <= v <= high``; ``low_open`` /
    ``high_open`` exclude the bound).  Files, overrides and sweep values are all checked
    against it where they are typed (:func:`_coerce`); non-finite floats never pass."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def _bounds(self) -> tuple[str | None, str | None]:
        def num(x: float) -> str:
            return str(int(x)) if float(x).is_integer() else f"{x:g}"

        low = None if self.low is None else f"{'above' if self.low_open else 'at least'} {num(self.low)}"
        high = None if self.high is None else f"{'below' if self.high_open else 'at most'} {num(self.high)}"
        return low, high

    def describe(self) -> str:
        return " and ".join(x for x in self._bounds() if x)

    def check(self, value: Any, where: str) -> None:
        low, high = self._bounds()
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            raise RangeError(f"{where}: expected {low}, got {brief(value)}")
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            raise RangeError(f"{where}: expected {high}, got {brief(value)}")


@dataclass(frozen=True)
class TextCheck:
    """A check of a text key, declared with the key: ``Annotated[str, PLAIN_NAME]``."""

    expected: str  # what the key must be, for messages
    test: Callable[[str, str], str]  # (value, where) -> value, or raises ConfigError

    def describe(self) -> str:
        return self.expected

    def check(self, value: Any, where: str) -> None:
        self.test(value, where)


NAME_MAX = 200  # characters of a run or sweep dir name (file systems allow 255 bytes)


def check_name(name: str, where: str) -> str:
    """``name`` if it is a plain file name (a run or sweep dir: no ``/``, not ``.``/``..``,
    no control characters, at most NAME_MAX characters), else a ConfigError at ``where``."""
    problem = ("is empty" if not name else "is . or .." if name in (".", "..")
               else "contains '/'" if "/" in name else "contains a control character" if not name.isprintable()
               else f"is longer than {NAME_MAX} characters" if len(name) > NAME_MAX else None)
    if problem:
        raise ConfigError(f"{where}: {brief(name)} {problem}; expected a plain file name (it names a folder)")
    return name


def check_line(text: str, where: str) -> str:
    """``text`` if it holds no control character (newline, CR, NUL, escape ...), which in a
    batch script would end a line or an ``#SBATCH`` block; else a ConfigError at ``where``."""
    if not text.isprintable() and any(unicodedata.category(ch) == "Cc" or ch in "\u2028\u2029" for ch in text):
        raise ConfigError(f"{where}: {brief(text)} contains a control character (e.g. a newline); "
                          "expected one line of text")
    return text


PLAIN_NAME = TextCheck("a plain file name", check_name)  # names a folder (run and sweep dirs)
ONE_LINE = TextCheck("one line of printable text", check_line)  # reaches a shell or batch script


@dataclass
class ModelConfig:
    name: Literal["googlenet_bn", "googlenet", "resnet56", "vgg_a", "mlp"] = "mlp"
    method: Literal["plain", "wn", "cwn", "nnn", "ws"] = "cwn"
    backend: Literal["auto", "reference", "explicit", "triton"] = "auto"  # CWN implementation
    hidden: list[Annotated[int, Range(1, 1 << 20)]] = field(default_factory=lambda: [128, 64, 48, 48])  # MLP widths
    keep_first_plain: bool = False  # leave the stem conv / first linear un-normalised
    keep_classifier_plain: bool = False  # leave the classifier un-normalised (vgg_a: both linears)
    aux_logits: bool = False  # torchvision googlenet's auxiliary heads
    init: Literal["default", "lecun", "xavier", "he"] = "default"  # default: the model's own (the authors')
    scale: Literal["learned", "fixed"] = "learned"  # wn/cwn g: parameter, or buffer (the authors' "NS" nets)
    scale_value: float = 1.0  # g's initial (learned) or constant (fixed) value
    batchnorm: bool = False  # mlp: BN before each hidden ReLU (Figure 4a)
    relu_before_bn: bool = True  # googlenet_bn inceptions: conv-ReLU-BN-ReLU as the authors' Lua
    nnn_interval: Annotated[int, Range(1, 1 << 30)] = 200  # nnn: optimizer updates between re-whitenings (the authors' -T)
    nnn_eps: Annotated[float, Range(0)] = 1.0  # nnn: damping added to the input covariance (the authors' -epcilo)
    nnn_first_plain: bool = True  # nnn: leave the first linear plain, as the authors' NNN MLP


@dataclass
class DataConfig:
    name: Literal["imagenet", "digits", "cifar10", "cifar100", "svhn", "yaleb", "synthetic"] = "digits"
    root: str | None = None  # folder with train/ and val/ (or the dataset's published files)
    loader: Literal["dali", "torch", "synthetic"] = "torch"
    image_size: Annotated[int, Range(1, 8192)] = 224  # train crop and val centre crop, pixels
    resize_size: Annotated[int, Range(1, 8192)] = 256  # val resize (and the paper's train resize), pixels
    # random_resized (torchvision) | resize_crop (paper: resize 256, random 224) | pad_crop (CIFAR:
    # pad 4, random crop) | resize (whole image, no flip: the MLP protocol); see data/augment.py
    train_crop: Literal["random_resized", "resize_crop", "pad_crop", "resize"] = "random_resized"
    num_classes: Annotated[int, Range(1, 1 << 20)] | None = None  # None: taken from the dataset
    grayscale: bool = False
    normalize: Literal["imagenet", "dataset"] = "imagenet"  # dataset: per-feature train stats
    workers: Annotated[int, Range(0, 1024)] = 2  # loader worker processes / DALI threads per rank
    skip_corrupt: bool = False  # skip and count unreadable images instead of failing
    scaled_decode: bool = True  # torch loader: decode a JPEG at 1/2-1/8 scale when its crop is >= 2x the output
    synthetic_samples: Annotated[int, Range(1, 1 << 30)] = 1024  # images per epoch when loader=synthetic
    # fraction of the train split held out (seeded) and evaluated as holdout_*
    holdout: Annotated[float, Range(0, 1, low_open=True, high_open=True)] | None = None
    split_seed: Annotated[int, Range(0, 2**32 - 1)] = 0  # seed of the holdout split and of yaleb's test split


@dataclass
class OptimConfig:
    name: Literal["sgd", "adam"] = "sgd"
    lr: Annotated[float, Range(0)] = 0.1  # for the global batch; not rescaled by world size
    momentum: Annotated[float, Range(0, 1)] = 0.9
    nesterov: bool = False
    weight_decay: Annotated[float, Range(0)] = 1e-4
    exempt_scales_biases: bool = False  # no weight decay on g, biases and BN parameters


@dataclass
class SchedConfig:
    name: Literal["constant", "exp", "step", "cosine"] = "exp"
    lr_end: Annotated[float, Range(0)] = 1e-4  # exp: lr(e) = lr * (lr_end / lr) ** (e / epochs)
    step_epochs: Annotated[int, Range(1, 1 << 20)] = 30  # step: multiply by gamma every step_epochs
    milestones: list[Annotated[float, Range(0, 1 << 20)]] = field(default_factory=list)  # step: or at these epochs
    gamma: Annotated[float, Range(0, low_open=True)] = 0.1
    warmup_epochs: Annotated[float, Range(0, 1 << 20)] = 0.0  # linear warm-up from 0 (cosine and step)


@dataclass
class TrainConfig:
    epochs: Annotated[int, Range(1, 1 << 20)] = 1
    batch_size: Annotated[int, Range(1, 1 << 20)] = 64  # per rank; global batch = batch_size * world size
    amp: Literal["none", "bf16", "fp16"] = "none"
    channels_last: bool = False
    deterministic: bool = False  # deterministic algorithms, bitwise-repeatable on CPU
    compile: bool = False  # torch.compile the model
    cudnn_benchmark: bool = True
    label_smoothing: Annotated[float, Range(0, 1, high_open=True)] = 0.0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    steps_per_epoch: Annotated[int, Range(1, 1 << 40)] | None = None  # cap on train steps per epoch (smoke runs)
    checkpoint_minutes: Annotated[float, Range(0, 1e9, low_open=True)] = 10.0  # also checkpoint mid-epoch this often
    checkpoint_every_steps: Annotated[int, Range(1, 1 << 40)] | None = None  # and/or every this many steps
    keep_checkpoints: Annotated[int, Range(1, 1 << 20)] = 2
    log_every: Annotated[int, Range(1, 1 << 40)] = 50  # steps between plain progress lines
    sync_every: Annotated[int, Range(1, 1 << 40)] = 50  # steps between host reads of the device (stop/NaN/checkpoint flags); run-time only
    accum_steps: Annotated[int, Range(1, 1 << 20)] = 1  # micro-batches per optimizer step (gradient accumulation); run-time only
    cuda_graph: bool = False  # capture the whole step once as a CUDA graph and replay it (GPU); run-time only
    # Figure 2 probes: per-layer pre-activation mean/var every N steps
    probe_every: Annotated[int, Range(1, 1 << 40)] | None = None
    fim_layers: list[str] = field(default_factory=list)  # module paths whose relative-FIM condition is probed
    fim_every: Annotated[int, Range(1, 1 << 40)] | None = None  # steps between FIM probes (default: probe_every)
    fim_samples: Annotated[int, Range(1, 1 << 24)] = 1024  # training images in the fixed FIM probe set
    tensorboard: bool = False  # also write metrics.jsonl's scalars as TensorBoard events (RUN_DIR/tensorboard/)
    allow_resize: bool = False  # resume on another world size from the sample count reached (not bitwise)


@dataclass
class Config:
    name: Annotated[str, PLAIN_NAME] = "experiment"  # names the run and sweep dirs
    seed: Annotated[int, Range(0, 2**32 - 1)] = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    sched: SchedConfig = field(default_factory=SchedConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sweep: dict[str, list] = field(default_factory=dict)


# --------------------------------------------------------------------- type checking

def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Annotated:
        inner, *meta = typing.get_args(tp)
        extra = ", ".join(m.describe() for m in meta if hasattr(m, "describe"))
        return f"{_type_name(inner)} ({extra})" if extra else _type_name(inner)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        (item,) = typing.get_args(tp) or (Any,)
        return f"list of {_type_name(item)}"
    if origin is dict:
        return "mapping"
    return "null" if tp is type(None) else getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Return ``value`` as type ``tp`` (its range and other checks of ``Annotated``
    included) or raise ConfigError naming ``where``."""
    origin = typing.get_origin(tp)
    ok = True
    if origin is Annotated:
        inner, *meta = typing.get_args(tp)
        value = _coerce(value, inner, where)
        try:
            for m in meta:
                m.check(value, where)
        except RangeError:
            raise
        except ConfigError as err:
            raise RangeError(str(err)) from None
        return value
    if origin is Literal:
        ok = value in typing.get_args(tp)
    elif origin in (typing.Union, types.UnionType):
        out_of_range = None
        for option in typing.get_args(tp):
            try:
                return _coerce(value, option, where)
            except RangeError as err:  # the type fits, the value does not: say that
                out_of_range = out_of_range or err
            except ConfigError:
                pass
        if out_of_range is not None:
            raise out_of_range
        ok = False
    elif origin is list:
        (item,) = typing.get_args(tp) or (Any,)
        if isinstance(value, list):
            return [_coerce(x, item, f"{where}[{i}]") for i, x in enumerate(value)]
        ok = False
    elif origin is dict or tp is dict:
        ok = isinstance(value, dict)
    elif tp is Any:
        ok = True
    elif tp is type(None):
        ok = value is None
    elif tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok and not math.isfinite(value):
            raise RangeError(f"{where}: expected a finite number, got {brief(value)}")
        value = float(value) if ok else value
    elif tp is str:
        ok = isinstance(value, str)
    if not ok:
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {type(value).__name__} {brief(value)}")
    return value


def _relations(cfg: Config, source: str) -> None:
    """Checks between keys that no single key's range can express."""
    if cfg.sched.name == "exp" and (cfg.optim.lr <= 0 or cfg.sched.lr_end <= 0):
        raise ConfigError(f"{source}: sched.name=exp needs optim.lr > 0 and sched.lr_end > 0 (it multiplies by "
                          f"lr_end / lr), got optim.lr={cfg.optim.lr:g}, sched.lr_end={cfg.sched.lr_end:g}")


def _fields(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls, include_extras=True)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _build(cls: type, data: Any, source: str, prefix: str = "") -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: {prefix.rstrip('.') or 'the config'} must be a mapping, got {type(data).__name__}")
    fields = _fields(cls)
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            section = prefix.rstrip(".") or "the top level"
            raise ConfigError(
                f"{source}: unknown key {brief(f'{prefix}{key}')}; valid keys in {section}: {', '.join(fields)}")
        tp = fields[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = _build(tp, value, source, f"{prefix}{key}.")
        else:
            kwargs[key] = _coerce(value, tp, f"{source}: key '{prefix}{key}'")
    return cls(**kwargs)


def _key_type(dotted: str, source: str) -> Any:
    cls: Any = Config
    parts = dotted.split(".")
    for depth, part in enumerate(parts):
        where = ".".join(parts[:depth]) or "the top level"
        if not dataclasses.is_dataclass(cls):
            raise ConfigError(f"{source}: {brief(dotted)}: '{where}' is a value, not a section; "
                              f"set '{where}' itself (e.g. {where}=VALUE)")
        fields = _fields(cls)
        if part not in fields or part == "sweep":
            raise ConfigError(f"{source}: unknown key {brief(dotted)}; valid keys in {where}: "
                              f"{', '.join(k for k in fields if k != 'sweep')}")
        cls = fields[part]
    if dataclasses.is_dataclass(cls):
        raise ConfigError(f"{source}: '{dotted}' is a section; set one of its keys ({', '.join(_fields(cls))})")
    return cls


# --------------------------------------------------------------------- public API

def to_dict(cfg: Config) -> dict[str, Any]:
    """The config as nested plain mappings (what run.json stores)."""
    return dataclasses.asdict(cfg)


def build_checked(cls: type, data: Any, source: str) -> Any:
    """Any dataclass ``cls`` (e.g. a cluster profile) from nested mappings, every key, type
    and range (``Annotated[..., Range(...)]``) checked as for configs; errors name
    ``source`` and the key."""
    return _build(cls, data, source)


SWEEP_MAX_POINTS = 100_000  # runs one sweep may expand to


def from_dict(data: dict[str, Any], source: str = "<config>") -> Config:
    """Validate nested mappings (e.g. ``run.json["config"]``) into a :class:`Config`."""
    cfg = _build(Config, data, source)
    for key, values in cfg.sweep.items():
        tp = _key_type(key, f"{source}: sweep")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{source}: sweep key {brief(key)} needs a non-empty list of values")
        cfg.sweep[key] = [_coerce(v, tp, f"{source}: sweep '{key}'") for v in values]
    points = math.prod(len(v) for v in cfg.sweep.values())
    if points > SWEEP_MAX_POINTS:
        raise ConfigError(f"{source}: the sweep has {points} points (the product of its lists' lengths); "
                          f"expected at most {SWEEP_MAX_POINTS}")
    _relations(cfg, source)
    return cfg


def get(cfg: Config, dotted: str) -> Any:
    """The value at a dotted key (``"model.method"``)."""
    obj: Any = cfg
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def set_value(cfg: Config, dotted: str, value: Any, source: str = "<override>") -> None:
    """Set a dotted key after checking its type; setting a swept key drops it from the sweep."""
    value = _coerce(value, _key_type(dotted, source), f"{source}: key '{dotted}'")
    *parents, last = dotted.split(".")
    obj: Any = cfg
    for part in parents:
        obj = getattr(obj, part)
    setattr(obj, last, value)
    cfg.sweep.pop(dotted, None)


def parse_override(text: str) -> tuple[str, Any]:
    """``"model.hidden=[128,64]"`` -> ``("model.hidden", [128, 64])``; the value is YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {brief(text)}: expected KEY=VALUE, e.g. train.epochs=3")
    try:
        return key.strip(), load_yaml(raw) if raw.strip() else ""
    except ConfigError as err:
        raise ConfigError(f"override {brief(text)}: value is not valid YAML ({err})") from None


def load_config(path: str | Path, overrides: typing.Iterable[str] = ()) -> Config:
    """Read ``path`` (YAML), apply ``KEY=VALUE`` overrides, validate. ``name`` defaults to
    the file's stem."""
    path = Path(path)
    data = read_yaml(path, "config") or {}
    if isinstance(data, dict):
        data.setdefault("name", path.stem)
    cfg = from_dict(data, str(path))
    for text in overrides:
        key, value = parse_override(text)
        set_value(cfg, key, value, f"{path}: override {brief(text)}")
    _relations(cfg, f"{path} (with overrides)" if overrides else str(path))
    return cfg


def read_yaml(path: Path, what: str) -> Any:
    """The YAML document in ``path`` (None when empty), read with :func:`load_yaml`; a
    one-line ConfigError naming ``path`` when it cannot be read (``what``: "config",
    "cluster profile") or is not UTF-8 YAML."""
    try:
        size = path.stat().st_size
        if size > YAML_MAX_BYTES:
            raise ConfigError(f"{path}: {size} bytes; a {what} is at most {YAML_MAX_BYTES} bytes of YAML")
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"{path}: cannot read {what} ({err.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (expected UTF-8 YAML)") from None
    try:
        return load_yaml(text)
    except ConfigError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from None


YAML_MAX_BYTES = 1 << 20  # a config, override or profile
YAML_MAX_NODES = 100_000  # values in a document with its aliases expanded (a "billion laughs" stops here)
# YAML 1.2's floats: PyYAML (YAML 1.1) reads 1e-3, 5E-4 and 1e30 (no dot in the mantissa) as strings
_FLOAT = re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                        |[-+]?(?:[0-9][0-9_]*)[eE][-+]?[0-9]+
                        |[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                        |[-+]?\.(?:inf|Inf|INF)
                        |\.(?:nan|NaN|NAN))$""", re.X)


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` (no tags, no objects) with YAML 1.2 floats and a bound on the
    document's size once aliases are expanded, checked before anything is constructed."""

    yaml_implicit_resolvers = {first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:float"]
                               for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}

    def construct_document(self, node: yaml.Node) -> Any:
        _count_nodes(node, {}, set())
        return super().construct_document(node)


_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


def _count_nodes(node: yaml.Node, sizes: dict[int, int], open_: set[int]) -> int:
    """Values under ``node`` with aliases expanded (a shared node counted once per use,
    computed once); a ConfigError past YAML_MAX_NODES or for a recursive alias."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in open_:
        raise ConfigError("a recursive alias (an anchor used inside itself)")
    open_.add(key)
    children = node.value if isinstance(node, yaml.SequenceNode) else \
        [x for pair in node.value for x in pair] if isinstance(node, yaml.MappingNode) else []
    total = 1 + sum(_count_nodes(child, sizes, open_) for child in children)
    open_.discard(key)
    if total > YAML_MAX_NODES:
        raise ConfigError(f"more than {YAML_MAX_NODES} values once its aliases are expanded")
    sizes[key] = total
    return total


def load_yaml(text: str) -> Any:
    """One YAML document read safely (see :class:`_Loader`); a one-line ConfigError (no
    file name: callers add theirs) when it is not valid or too large."""
    if len(text) > YAML_MAX_BYTES:
        raise ConfigError(f"{len(text)} characters; at most {YAML_MAX_BYTES}")
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 (_Loader is a SafeLoader)
    except yaml.YAMLError as err:
        raise ConfigError(_yaml_problem(err)) from None
    except RecursionError:
        raise ConfigError("nested too deeply") from None


def _yaml_problem(err: yaml.YAMLError) -> str:
    """One line for a YAML error: ``line 2, column 1: expected the node content ...``."""
    mark, problem = getattr(err, "problem_mark", None), getattr(err, "problem", None)
    if mark is None or problem is None:
        return " ".join(str(err).split())[:200]
    return f"line {mark.line + 1}, column {mark.column + 1}: {' '.join(str(problem).split())[:200]}"


def run_name(point: dict[str, Any]) -> str:
    """Directory name of one sweep point: ``{"model.method": "cwn", "seed": 1}`` ->
    ``"method=cwn,seed=1"`` (last part of each key; lists joined with ``-``).  Characters
    that have no place in a file name (``/``, ``%``, control and non-ASCII characters)
    are %-escaped (``data.root=/d/x`` -> ``root=%2Fd%2Fx``), so a swept value never leaves
    the sweep dir; a name longer than NAME_MAX is a ConfigError."""
    if not point:
        return "run"

    def fmt(v: Any) -> str:
        text = "-".join(map(str, v)) if isinstance(v, list) else str(v)
        return urllib.parse.quote(text, safe=" !#$&'()*+,-.:;=?@[]^_`{|}~")

    name = ",".join(f"{k.rsplit('.', 1)[-1]}={fmt(v)}" for k, v in point.items())
    return check_name(name, "sweep point")


def expand_sweep(cfg: Config) -> list[tuple[dict[str, Any], Config]]:
    """The cartesian product of ``cfg.sweep``: ``[(point, config)]`` in a stable order,
    each config with its point applied and an empty sweep."""
    keys = list(cfg.sweep)
    runs = []
    for values in itertools.product(*(cfg.sweep[k] for k in keys)):
        point = dict(zip(keys, values))
        run = from_dict({**to_dict(cfg), "sweep": {}})
        for key, value in point.items():
            set_value(run, key, value, "sweep")
        _relations(run, f"sweep point {run_name(point)}")
        runs.append((point, run))
    return runs


def _digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


# How a run is carried out, not what it computes (the recorded global batch identifies the
# recipe): a run may be resumed with other values.
RUN_TIME_TRAIN_KEYS = ("allow_resize", "tensorboard", "sync_every", "accum_steps", "cuda_graph")


def config_hash(cfg: Config) -> str:
    """Stable hash of the resolved config without ``seed``, ``name``, ``sweep`` and the
    run-time keys (:data:`RUN_TIME_TRAIN_KEYS`, e.g. ``train.allow_resize``,
    ``train.accum_steps``): equal for the seeds of one experiment, different as soon as
    anything else differs."""
    data = to_dict(cfg)
    for key in ("seed", "name", "sweep"):
        data.pop(key)
    for key in RUN_TIME_TRAIN_KEYS:
        data["train"].pop(key)
    return _digest(data)


def sweep_hash(cfg: Config) -> str:
    """Stable hash of a whole sweep (base values and sweep lists, name left out)."""
    data = to_dict(cfg)
    data.pop("name")
    return _digest(data)


def dump_yaml(cfg: Config) -> str:
    """The resolved config as YAML text."""
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)
