"""An environment defined outside the package is one folder and one registration: a user's package
with a gymnasium environment and a dataset recipe, imported with ``--import``, builds its data, trains
and evaluates through train.py and evaluate.py without any rmdt file naming it."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

PACKAGE = {
    "__init__.py": '''
        """Cue: the first observation says which of two actions pays at the last step."""
        import gymnasium as gym

        from rmdt.envs import register_env

        EVALUATOR = "rmdt.envs.gymnasium"  # evaluated as a gymnasium id, by rmdt's gymnasium evaluator
        if "cue_env/Cue-v0" not in gym.registry:
            gym.register("cue_env/Cue-v0", entry_point="cue_env.env:CueEnv")
        register_env("cue", "cue_env")
    ''',
    "env.py": '''
        import gymnasium as gym
        import numpy as np


        class CueEnv(gym.Env):
            observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
            action_space = gym.spaces.Discrete(2)
            length = 4

            def reset(self, seed=None, options=None):
                super().reset(seed=seed)
                self.t, self.cue = 0, int(self.np_random.integers(2))
                return self._obs(), {"cue": self.cue}

            def _obs(self):
                return np.array([2.0 * self.cue - 1.0 if self.t == 0 else 0.0, self.t == self.length - 1], np.float32)

            def step(self, action):
                self.t += 1
                done = self.t == self.length
                reward = float(done and action == self.cue)
                return self._obs(), reward, done, False, {"cue": self.cue}
    ''',
    "recipe.py": '''
        import argparse

        import gymnasium as gym

        from rmdt.envs import oracle_play


        def build(episodes: int = 50, random_share: float = 0.1, seed: int = 0, root=None) -> str:
            """Oracle episodes of Cue (the oracle remembers the cue) as a Minari dataset; returns its id."""
            def make_act():
                memory = {}

                def act(env):
                    memory.setdefault("cue", env.unwrapped.cue)
                    return memory["cue"]
                return act

            return oracle_play.build(f"cue/oracle-e{episodes}-r{round(100 * random_share)}-s{seed}-v0",
                                     lambda: gym.make("cue_env/Cue-v0"), make_act, "cue_env/Cue-v0", episodes,
                                     random_share, seed, root, requirements=["rmdt"])


        def main(argv=None) -> None:
            parser = argparse.ArgumentParser()
            oracle_play.add_play_arguments(parser, {"episodes": 50, "random_share": 0.1, "seed": 0})
            args = parser.parse_args(argv)
            print(build(args.episodes, args.random_share, args.seed, args.root))
    ''',
}


@pytest.mark.slow
def test_an_environment_outside_rmdt_trains_and_evaluates(tmp_path):
    for name, text in PACKAGE.items():
        (tmp_path / "cue_env").mkdir(exist_ok=True)
        (tmp_path / "cue_env" / name).write_text(textwrap.dedent(text).lstrip())
    config = {"name": "cue_{model}", "model": {"preset": "dt", "d_model": 16, "n_layers": 1, "n_heads": 2},
              "data": {"recipe": "cue", "recipe_args": {"episodes": 40}, "root": str(tmp_path / "data"),
                       "context_len": 4, "num_segments": 1},
              "training": {"steps": 3, "batch_size": 8, "warmup_steps": 1, "log_every": 3, "trackers": []},
              "evaluation": {"env": "gymnasium", "episodes": 4}}
    (tmp_path / "cue.yaml").write_text(yaml.safe_dump(config))

    def run(*args):
        return subprocess.run([sys.executable, *args], cwd=tmp_path, capture_output=True, text=True, timeout=300)

    trained = run(str(ROOT / "train.py"), "cue.yaml", "--import", "cue_env", "--run-dir", "runs/cue")
    assert trained.returncode == 0, trained.stderr
    saved = json.loads((tmp_path / "runs/cue/final/config.json").read_text())["evaluation"]["env_args"]
    assert saved["id"] == "cue_env/Cue-v0" and saved["ref_max_score"] == 1.0  # from the recipe's metadata
    evaluated = run(str(ROOT / "evaluate.py"), "runs/cue", "--import", "cue_env")
    assert evaluated.returncode == 0, evaluated.stderr
    row, = json.loads((tmp_path / "runs/cue/eval/results.json").read_text())["results"]
    assert row["env_id"] == "cue_env/Cue-v0" and row["episodes"] == 4 and row["lengths"] == [4] * 4
    unknown = run(str(ROOT / "train.py"), "cue.yaml", "--run-dir", "runs/again")  # not imported: not known
    assert unknown.returncode == 2 and "unknown dataset recipe 'cue'" in unknown.stderr


def test_no_rmdt_file_names_the_guide_environment():
    sources = [*(ROOT / "rmdt").rglob("*.py"), ROOT / "train.py", ROOT / "evaluate.py"]
    assert not [p for p in sources if "cue_env" in p.read_text()]
