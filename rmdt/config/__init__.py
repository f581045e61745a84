"""Run configuration: typed dataclasses (the comment on each field is its documentation), YAML files
and command-line overrides. A key that no dataclass knows is an error naming it (with the closest
known key), so a typo never silently trains with a default.

- ``run``: the whole run config, preset composition, overrides and the checks of usable values;
- ``evaluation``: the evaluation section and the environments' own settings;
- ``upgrade``: the shapes older versions wrote, brought to today's.
"""
from rmdt.config.evaluation import EvaluationConfig, evaluation_config, evaluation_overrides, override_evaluation
from rmdt.config.run import Config, DataConfig, TrainingConfig, load_config, validate
from rmdt.errors import ConfigError

__all__ = ["Config", "ConfigError", "DataConfig", "EvaluationConfig", "TrainingConfig", "evaluation_config",
           "evaluation_overrides", "load_config", "override_evaluation", "validate"]
