"""Typed experiment configs: YAML + dotted ``KEY=VALUE`` overrides + sweeps.

A config file is nested YAML (``model: {name: mlp, method: cwn}``) read with
``yaml.safe_load`` into the dataclasses below; every key is checked (an unknown key
names the file, the key and the valid keys; a wrong type names the expected type).
``sweep:`` maps dotted keys to lists; :func:`expand_sweep` yields their cartesian
product.  :func:`config_hash` identifies an experiment across seeds (seed and name
left out); :func:`sweep_hash` identifies a whole sweep (seed and sweep lists included).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from cwn_bench.errors import UserError, brief


class ConfigError(UserError):
    """A config file, override or sweep that does not validate; the message says where."""


@dataclass
class ModelConfig:
    name: Literal["googlenet_bn", "googlenet", "resnet56", "vgg_a", "mlp"] = "mlp"
    method: Literal["plain", "wn", "cwn"] = "cwn"
    backend: Literal["auto", "reference", "explicit", "triton"] = "auto"  # CWN implementation
    hidden: list[int] = field(default_factory=lambda: [128, 64, 48, 48])  # MLP widths
    keep_first_plain: bool = False  # leave the stem conv / first linear un-normalised
    keep_classifier_plain: bool = False  # leave the last linear un-normalised
    aux_logits: bool = False  # torchvision googlenet's auxiliary heads


@dataclass
class DataConfig:
    name: Literal["imagenet", "digits", "cifar10", "cifar100", "svhn", "synthetic"] = "digits"
    root: str | None = None  # folder with train/ and val/ (or the dataset's published files)
    loader: Literal["dali", "torch", "synthetic"] = "torch"
    image_size: int = 224  # train crop and val centre crop, pixels
    resize_size: int = 256  # val resize (and the paper's train resize), pixels
    # random_resized (torchvision) | resize_crop (paper: resize 256, random 224) | pad_crop (CIFAR:
    # pad 4, random crop) | resize (whole image, no flip: the MLP protocol); see data/augment.py
    train_crop: Literal["random_resized", "resize_crop", "pad_crop", "resize"] = "random_resized"
    num_classes: int | None = None  # None: taken from the dataset
    grayscale: bool = False
    normalize: Literal["imagenet", "dataset"] = "imagenet"  # dataset: per-feature train stats
    workers: int = 2  # loader worker processes / DALI threads per rank
    skip_corrupt: bool = False  # skip and count unreadable images instead of failing
    synthetic_samples: int = 1024  # images per epoch when loader=synthetic


@dataclass
class OptimConfig:
    name: Literal["sgd", "adam"] = "sgd"
    lr: float = 0.1  # for the global batch; not rescaled by world size
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 1e-4
    exempt_scales_biases: bool = False  # no weight decay on g, biases and BN parameters


@dataclass
class SchedConfig:
    name: Literal["constant", "exp", "step", "cosine"] = "exp"
    lr_end: float = 1e-4  # exp: lr(e) = lr * (lr_end / lr) ** (e / epochs)
    step_epochs: int = 30  # step: multiply by gamma every step_epochs
    milestones: list[float] = field(default_factory=list)  # step: ...or at these epochs instead
    gamma: float = 0.1
    warmup_epochs: float = 0.0  # linear warm-up from 0 (cosine and step)


@dataclass
class TrainConfig:
    epochs: int = 1
    batch_size: int = 64  # per rank; global batch = batch_size * world size
    amp: Literal["none", "bf16", "fp16"] = "none"
    channels_last: bool = False
    deterministic: bool = False  # deterministic algorithms, bitwise-repeatable on CPU
    compile: bool = False  # torch.compile the model
    cudnn_benchmark: bool = True
    label_smoothing: float = 0.0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    steps_per_epoch: int | None = None  # cap on train steps per epoch (smoke runs)
    checkpoint_minutes: float = 10.0  # also checkpoint mid-epoch this often
    checkpoint_every_steps: int | None = None  # and/or every this many steps (tests, short jobs)
    keep_checkpoints: int = 2
    log_every: int = 50  # steps between plain progress lines


@dataclass
class Config:
    name: str = "experiment"
    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    sched: SchedConfig = field(default_factory=SchedConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sweep: dict[str, list] = field(default_factory=dict)


# --------------------------------------------------------------------- type checking

def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
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
    """Return ``value`` as type ``tp`` or raise ConfigError naming ``where``."""
    origin = typing.get_origin(tp)
    ok = True
    if origin is Literal:
        ok = value in typing.get_args(tp)
    elif origin in (typing.Union, types.UnionType):
        for option in typing.get_args(tp):
            try:
                return _coerce(value, option, where)
            except ConfigError:
                pass
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
        value = float(value) if ok else value
    elif tp is str:
        ok = isinstance(value, str)
    if not ok:
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}")
    return value


# keys whose values below these make no run (a zero batch divides by zero, 0 epochs trains nothing)
MINIMUMS = {"train.epochs": 1, "train.batch_size": 1, "train.steps_per_epoch": 1, "train.log_every": 1,
            "train.checkpoint_every_steps": 1, "data.image_size": 1, "data.resize_size": 1, "data.workers": 0,
            "data.synthetic_samples": 1}


def _checked(value: Any, tp: Any, dotted: str, where: str, minimums: dict[str, int] = MINIMUMS) -> Any:
    """``_coerce`` for the value of a dotted config key, then its minimum (MINIMUMS), so a
    file, an override and a sweep value are all held to it at the one place they are typed."""
    value = _coerce(value, tp, where)
    low = minimums.get(dotted)
    if low is not None and value is not None and value < low:
        raise ConfigError(f"{where}: expected at least {low}, got {value}")
    return value


def _fields(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _build(cls: type, data: Any, source: str, prefix: str = "", minimums: dict[str, int] = MINIMUMS) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: {prefix.rstrip('.') or 'the config'} must be a mapping, got {type(data).__name__}")
    fields = _fields(cls)
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            section = prefix.rstrip(".") or "the top level"
            raise ConfigError(
                f"{source}: unknown key '{prefix}{key}'; valid keys in {section}: {', '.join(fields)}")
        tp = fields[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = _build(tp, value, source, f"{prefix}{key}.", minimums)
        else:
            kwargs[key] = _checked(value, tp, f"{prefix}{key}", f"{source}: key '{prefix}{key}'", minimums)
    return cls(**kwargs)


def _key_type(dotted: str, source: str) -> Any:
    cls: Any = Config
    parts = dotted.split(".")
    for depth, part in enumerate(parts):
        fields = _fields(cls)
        if part not in fields or part == "sweep":
            where = ".".join(parts[:depth]) or "the top level"
            raise ConfigError(f"{source}: unknown key '{dotted}'; valid keys in {where}: "
                              f"{', '.join(k for k in fields if k != 'sweep')}")
        cls = fields[part]
    if dataclasses.is_dataclass(cls):
        raise ConfigError(f"{source}: '{dotted}' is a section; set one of its keys ({', '.join(_fields(cls))})")
    return cls


# --------------------------------------------------------------------- public API

def to_dict(cfg: Config) -> dict[str, Any]:
    """The config as nested plain mappings (what run.json stores)."""
    return dataclasses.asdict(cfg)


def build_checked(cls: type, data: Any, source: str, minimums: dict[str, int] | None = None) -> Any:
    """Any dataclass ``cls`` (e.g. a cluster profile) from nested mappings, every key and
    type checked as for configs, numbers held to ``minimums`` (dotted key -> least value);
    errors name ``source`` and the key."""
    return _build(cls, data, source, minimums=minimums or {})


def from_dict(data: dict[str, Any], source: str = "<config>") -> Config:
    """Validate nested mappings (e.g. ``run.json["config"]``) into a :class:`Config`."""
    cfg = _build(Config, data, source)
    for key, values in cfg.sweep.items():
        tp = _key_type(key, f"{source}: sweep")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{source}: sweep key '{key}' needs a non-empty list of values")
        cfg.sweep[key] = [_checked(v, tp, key, f"{source}: sweep '{key}'") for v in values]
    return cfg


def get(cfg: Config, dotted: str) -> Any:
    """The value at a dotted key (``"model.method"``)."""
    obj: Any = cfg
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def set_value(cfg: Config, dotted: str, value: Any, source: str = "<override>") -> None:
    """Set a dotted key after checking its type; setting a swept key drops it from the sweep."""
    value = _checked(value, _key_type(dotted, source), dotted, f"{source}: key '{dotted}'")
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
        raise ConfigError(f"override {text!r}: expected KEY=VALUE, e.g. train.epochs=3")
    try:
        return key.strip(), yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as err:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({err})") from None


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
        set_value(cfg, key, value, f"{path}: override {text!r}")
    return cfg


def read_yaml(path: Path, what: str) -> Any:
    """The YAML document in ``path`` (None when empty), read with ``yaml.safe_load``; a
    one-line ConfigError naming ``path`` when it cannot be read (``what``: "config",
    "cluster profile") or is not UTF-8 YAML."""
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"{path}: cannot read {what} ({err.strerror})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (expected UTF-8 YAML)") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({_yaml_problem(err)})") from None


def _yaml_problem(err: yaml.YAMLError) -> str:
    """One line for a YAML error: ``line 2, column 1: expected the node content ...``."""
    mark, problem = getattr(err, "problem_mark", None), getattr(err, "problem", None)
    if mark is None or problem is None:
        return " ".join(str(err).split())
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"


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


def run_name(point: dict[str, Any]) -> str:
    """Directory name of one sweep point: ``{"model.method": "cwn", "seed": 1}`` ->
    ``"method=cwn,seed=1"`` (last part of each key; lists joined with ``-``)."""
    if not point:
        return "run"

    def fmt(v: Any) -> str:
        return "-".join(map(str, v)) if isinstance(v, list) else str(v)

    return ",".join(f"{k.rsplit('.', 1)[-1]}={fmt(v)}" for k, v in point.items())


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
        runs.append((point, run))
    return runs


def _digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def config_hash(cfg: Config) -> str:
    """Stable hash of the resolved config without ``seed``, ``name`` and ``sweep``: equal
    for the seeds of one experiment, different as soon as anything else differs."""
    data = to_dict(cfg)
    for key in ("seed", "name", "sweep"):
        data.pop(key)
    return _digest(data)


def sweep_hash(cfg: Config) -> str:
    """Stable hash of a whole sweep (base values and sweep lists, name left out)."""
    data = to_dict(cfg)
    data.pop("name")
    return _digest(data)


def dump_yaml(cfg: Config) -> str:
    """The resolved config as YAML text."""
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)
