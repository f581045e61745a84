"""Evaluate a checkpoint: python evaluate.py CHECKPOINT_DIR [--episodes N] [--seed S] [--out FILE.json] [--lengths L ...]

CHECKPOINT_DIR is a run directory (its final/ is used) or a save_pretrained directory. The
environment and its settings come from the checkpoint (the run's `evaluation` config); flags
override them. Writes a JSON report (one row per evaluated setting, with 95% intervals) and a PNG
plot beside it.
"""
import argparse
import json
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="run directory or save_pretrained directory")
    parser.add_argument("--episodes", type=int, help="episodes per setting, run at once (default: from the checkpoint)")
    parser.add_argument("--seed", type=int, help="seed of the evaluation environments")
    parser.add_argument("--target-return", type=float, help="return-to-go at the first step (before scaling)")
    parser.add_argument("--lengths", type=int, nargs="+", help="T-Maze corridor lengths (default: from the checkpoint)")
    parser.add_argument("--out", help="JSON report path (default CHECKPOINT_RUN/eval/results.json)")
    args = parser.parse_args(argv)
    from rmdt.evaluation import env_evaluator, evaluate_checkpoint

    overrides = {"episodes": args.episodes, "seed": args.seed, "target_return": args.target_return,
                 "corridor_lengths": args.lengths}
    try:
        out = evaluate_checkpoint(args.checkpoint, overrides, args.out)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    report = json.loads(open(out).read())
    describe = env_evaluator(report["env"]).describe
    for row in report["results"]:
        print(describe(row))
    print(f"results: {out}\nplot:    {out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
