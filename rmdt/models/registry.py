"""Model kinds: one registry from ``kind`` (the run config's ``model.kind``) to the kind's config class
(a ``PretrainedConfig``, written to config.json beside the weights) and its model class.

The run config's model section is ``{kind: ..., <that kind's own fields>}``: the fields come from the
config class, so a kind is declared once. What the dataset and the data section decide (shapes,
statistics, K, the return scale) is filled in when the model is built, never set in the model section.
"""
from __future__ import annotations

import copy
import dataclasses
import sys
import typing
from dataclasses import dataclass

from rmdt.errors import ConfigError
from rmdt.models.elmur import ELMURConfig, ELMURModel
from rmdt.models.policy_config import FieldError
from rmdt.models.recurrent import COMMON_FIELDS, MEMORY_LAYERS, RecurrentConfig, RecurrentModel
from rmdt.models.rmdt import RMDTConfig, RMDTModel
from rmdt.registry import Registry
from rmdt.suggest import did_you_mean
from rmdt.typed import build

DATA_FACTS = ("obs_shape", "num_actions", "act_dim", "obs_mean", "obs_std")  # from the dataset
RUN_FACTS = {"context_len": "data.context_len", "return_scale": "data.return_scale"}  # from the data section


def run_facts(data) -> dict:
    """The ``RUN_FACTS`` of a run config's data section (a DataConfig): K and the return scale."""
    return {fact: getattr(data, key.removeprefix("data.")) for fact, key in RUN_FACTS.items()}


@dataclass(frozen=True)
class ModelKind:
    name: str
    config_class: type  # PretrainedConfig subclass: the fields, their checks, config.json
    model_class: type  # PreTrainedModel + Policy: built from a config_class instance
    settings: type  # dataclass of the run config's model section for this kind: kind + fields
    implied: dict  # config values the kind fixes (a recurrent kind fixes its layer)

    @property
    def fields(self) -> list[str]:
        return [f.name for f in dataclasses.fields(self.settings) if f.name != "kind"]

    def config(self, settings, **facts):
        """The config class built from a model section and the facts of the data (shapes, statistics,
        and whichever of ``RUN_FACTS`` the config class declares)."""
        declared = config_fields(self.config_class)
        values = {name: getattr(settings, name) for name in self.fields}
        facts = {key: value for key, value in facts.items() if key in declared or key not in RUN_FACTS}
        return self.config_class(**values, **self.implied, **facts)


MODELS: Registry[ModelKind] = Registry("model kind")


def config_fields(config_class) -> dict[str, dataclasses.Field]:
    """The fields a policy config class declares itself (beyond ``PretrainedConfig``'s), in order."""
    from transformers import PretrainedConfig

    own = {name for klass in config_class.__mro__ if klass is not PretrainedConfig
           and issubclass(klass, PretrainedConfig) for name in klass.__dict__.get("__annotations__", {})}
    return {f.name: f for f in dataclasses.fields(config_class) if f.name in own}


def _annotation(config_class, name: str):
    for klass in config_class.__mro__:
        annotation = klass.__dict__.get("__annotations__", {}).get(name)
        if annotation is not None:
            return eval(annotation, vars(sys.modules[klass.__module__])) if isinstance(annotation, str) else annotation
    raise KeyError(name)


def register_model(kind: str, config_class, model_class, fields: typing.Sequence[str] | None = None,
                   implied: dict | None = None, replace: bool = False) -> ModelKind:
    """Registers a model kind (and its classes with transformers' Auto classes, so checkpoints load).

    ``fields``: the config fields the run config's model section may set (default: every field the
    config class declares but the data facts and ``implied``); ``implied``: config values the kind fixes.
    """
    implied = dict(implied or {})
    declared = config_fields(config_class)
    names = list(fields) if fields is not None else [
        name for name in declared if name not in (*DATA_FACTS, *RUN_FACTS, *implied)]
    unknown = [name for name in names if name not in declared]
    if unknown:
        raise ValueError(f"model kind {kind!r}: {config_class.__name__} has no field {', '.join(unknown)}")
    specs = [("kind", str, dataclasses.field(default=kind))]
    for name in names:
        default = declared[name].default
        if default is dataclasses.MISSING and declared[name].default_factory is not dataclasses.MISSING:
            default = declared[name].default_factory()
        specs.append((name, _annotation(config_class, name),
                      dataclasses.field(default_factory=lambda value=default: copy.deepcopy(value))))
    settings = dataclasses.make_dataclass(f"{kind}_model_section", specs)
    settings.__doc__ = f"The run config's model section for model kind {kind!r}."
    register_with_transformers(config_class, model_class)
    return MODELS.register(kind, ModelKind(kind, config_class, model_class, settings, implied), replace=replace)


def register_with_transformers(config_class, model_class) -> None:
    """Makes transformers' AutoConfig / AutoModel load ``model_type`` checkpoints as these classes (the
    last registration of a model type wins)."""
    from transformers import AutoConfig, AutoModel

    AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
    AutoModel.register(config_class, model_class, exist_ok=True)


def model_section(values, prefix: str = "model.") -> typing.Any:
    """The typed model section of a run config from its mapping: the kind's fields with its defaults,
    checked by the kind's config class. A field of another kind is refused naming that kind."""
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(f"{prefix.rstrip('.')} must be a mapping {{kind: ..., <its fields>}} or a preset name, "
                          f"got {values!r}", prefix + "kind")
    kind = values.get("kind")
    if kind is None:
        raise ConfigError(f"{prefix}kind must be set (a model kind: {', '.join(MODELS)}), or name a preset with "
                          f"{prefix.rstrip('.')}=NAME", prefix + "kind")
    if kind not in MODELS:
        raise ConfigError(f"{prefix}kind {kind!r} is unknown{did_you_mean(kind, MODELS)}", prefix + "kind")
    entry = MODELS[kind]
    for key in values:
        owners = [other for other, e in MODELS.items() if key in e.fields]
        if key != "kind" and key not in entry.fields and owners:
            raise ConfigError(f"{prefix}{key} is a field of model kind {', '.join(owners)}, not of {kind!r} "
                              f"(fields of {kind}: {', '.join(entry.fields)})", prefix + key)
    return build(entry.settings, values, prefix)


def check_model_section(section, facts: dict) -> None:
    """Runs the kind's own checks (encoder names, d_model divisible by n_heads, ...) on placeholder
    data shapes, as ConfigError naming the run-config key of the bad field."""
    entry = MODELS[section.kind]
    try:
        entry.config(section, obs_shape=[1], num_actions=2, **facts)
    except FieldError as error:
        key = RUN_FACTS.get(error.field) or ("model.kind" if error.field in entry.implied else f"model.{error.field}")
        hint = did_you_mean(error.value, error.choices, list_known=False) if error.choices else ""
        also = ("model.n_heads",) if error.field == "d_model" else ()
        raise ConfigError(f"{key} must be {error.what}, got {error.value!r}{hint}", key, *also) from None


register_model("rmdt", RMDTConfig, RMDTModel)
register_model("elmur", ELMURConfig, ELMURModel)
for _layer, _spec in MEMORY_LAYERS.items():
    register_model(_layer, RecurrentConfig, RecurrentModel, fields=(*COMMON_FIELDS, *_spec.fields),
                   implied={"layer": _layer})
