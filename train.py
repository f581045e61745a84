"""Train a policy: python train.py CONFIG [section.key=value | model=PRESET ...] [--run-dir DIR] [--resume]
                                  [--import MODULE]

The run directory holds config.yaml (resolved), train.log, tensorboard/, checkpoints/ and final/
(a save_pretrained directory that evaluate.py reads). Under `accelerate launch` it runs on every
process it is given. With --resume, the run directory's config.yaml rules: pass it as CONFIG (or
a config equal to it) with the overrides a resumed run accepts, e.g. training.steps=4000.
Errors are one line on stderr (from the main process only) and exit status 2.
"""
import argparse
import os
import sys

from rmdt.config import ConfigError, load_config
from rmdt.data import DataError
from rmdt.plugins import add_import_argument, import_plugins


def error_line(error: BaseException, every_process: bool = False) -> int:
    """Prints ``error`` as one line, once for all processes (or from each, when they differ); returns 2."""
    if every_process or int(os.environ.get("RANK", "0")) == 0:
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
    return 2


def main(argv=None) -> int:
    from rmdt.presets import PRESETS

    presets = "\n".join(f"  {name:<18}{preset.about}" for name, preset in PRESETS.items())
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=f"model presets (model=NAME):\n{presets}")
    parser.add_argument("config", help="YAML file, e.g. configs/tmaze/rmdt.yaml")
    parser.add_argument("overrides", nargs="*", help="dotted overrides, e.g. training.steps=2000, or model=PRESET "
                                                     "(a preset of rmdt.presets, e.g. model=ffm)")
    parser.add_argument("--run-dir", help="run directory (default runs/{name}__{seed}__{time})")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --run-dir from its last intact checkpoint")
    add_import_argument(parser)
    args = parser.parse_intermixed_args(argv)  # overrides may also follow the flags
    if args.resume and not args.run_dir:
        parser.error("--resume needs --run-dir")
    try:
        import_plugins(args.imports)
        config = load_config(args.config, args.overrides)
    except (ConfigError, DataError, ValueError) as error:
        return error_line(error)
    from rmdt.training import train
    from rmdt.training.checkpoint import CheckpointError
    from rmdt.training.guard import NonFiniteError
    from rmdt.training.trainer import CollectiveTimeout

    try:
        run_dir = train(config, run_dir=args.run_dir, resume=args.resume).run_dir
    except CollectiveTimeout as error:  # the main process may be the one that hung
        return error_line(error, every_process=True)
    except (DataError, FileExistsError, FileNotFoundError, ValueError, CheckpointError, NonFiniteError,
            OSError) as error:
        return error_line(error)
    print(f"trained: {run_dir}/final")
    return 0


if __name__ == "__main__":
    sys.exit(main())
