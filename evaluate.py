"""Evaluate a checkpoint: python evaluate.py CHECKPOINT_DIR [KEY=VALUE ...] [--episodes N] [--seed S] [--out FILE.json]
                                            [--target-return R ...] [--lengths L ...] [--probe-memory]
                                            [--export-attention DIR] [--import MODULE]

CHECKPOINT_DIR is a run directory (its final/ is used) or a save_pretrained directory. The
environment and its settings come from the checkpoint (the run's `evaluation` config); KEY=VALUE
and flags override them: KEY is a common evaluation setting (env, episodes, num_envs, seed,
target_return, sample_actions, periodic_episodes), or else a setting of the checkpoint's
environment (its evaluation.env_args; `env_args.KEY=VALUE` means the same). A setting of another
environment is an error. Writes a JSON report (one row per evaluated setting and target return,
with 95% intervals) and a PNG plot beside it. --probe-memory evaluates with memory intact, zeroed
and shuffled across environments instead (memory_probe.json and .png); --export-attention also
writes attention maps.
"""
import argparse
import json
import sys

from rmdt.plugins import add_import_argument, import_plugins


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="run directory or save_pretrained directory")
    parser.add_argument("settings", nargs="*", metavar="KEY=VALUE",
                        help="an evaluation setting, common or of the env, e.g. episodes=10 target_return=[1,2] "
                             "corridor_lengths=[9,30] max_steps=500 gif=episode.gif game=Pong")
    parser.add_argument("--episodes", type=int, help="episodes per setting, run at once (default: from the checkpoint)")
    parser.add_argument("--seed", type=int, help="seed of the evaluation environments")
    parser.add_argument("--target-return", type=float, nargs="+",
                        help="return-to-go at the first step (before scaling); several: each evaluated")
    parser.add_argument("--lengths", type=int, nargs="+",
                        help="T-Maze only: corridor lengths (= corridor_lengths=[...]; default: from the checkpoint)")
    parser.add_argument("--out", help="JSON report path (default CHECKPOINT_RUN/eval/results.json, "
                                      "or memory_probe.json with --probe-memory)")
    parser.add_argument("--probe-memory", action="store_true",
                        help="evaluate with memory intact, zeroed and shuffled across environments")
    parser.add_argument("--probe-cache", action="store_true",
                        help="with --probe-memory: zero / shuffle the hidden-state cache (model.cache_len) "
                             "with the memory")
    parser.add_argument("--export-attention", metavar="DIR",
                        help="also run --attention-episodes episodes per setting and write their attention maps "
                             "(.npz, PNG heatmaps per layer, memory read/write summary) to DIR")
    parser.add_argument("--attention-episodes", type=int, default=2, help="episodes per setting to export (default 2)")
    parser.add_argument("--attention-segments", type=int, default=64,
                        help="segments kept per exported episode, from its start (default 64)")
    parser.add_argument("--per-head", action="store_true", help="with --export-attention: heatmaps of every head too")
    add_import_argument(parser)
    args = parser.parse_intermixed_args(argv)  # KEY=VALUE settings may also follow the flags
    from rmdt.config import evaluation_overrides
    from rmdt.envs.registry import ENVS
    from rmdt.evaluation import checkpoint_policy, evaluate_checkpoint
    from rmdt.evaluation.attention_export import export_checkpoint_attention
    from rmdt.evaluation.probe import probe_checkpoint

    try:
        import_plugins(args.imports)
        overrides = evaluation_overrides(args.settings)
        overrides.update({key: value for key, value in (("episodes", args.episodes), ("seed", args.seed))
                          if value is not None})
        if args.target_return is not None:
            overrides["target_return"] = args.target_return[0] if len(args.target_return) == 1 else args.target_return
        if args.lengths is not None:
            overrides["env_args"]["corridor_lengths"] = args.lengths
        checkpoint = checkpoint_policy(args.checkpoint)  # loaded once, for every report below
        if args.probe_memory:
            out = probe_checkpoint(checkpoint, overrides, args.out, cache=args.probe_cache)
        else:
            out = evaluate_checkpoint(checkpoint, overrides, args.out)
        report = json.loads(open(out).read())
        describe = ENVS.evaluator(report["env"]).describe
        runs = report["interventions"] if args.probe_memory else {"": report}
        for name, run in runs.items():
            for row in run["results"]:
                print(f"memory {name:<8}  {describe(row)}" if name else describe(row))
        print(f"results: {out}\nplot:    {out.with_suffix('.png')}")
        if args.export_attention:
            index = export_checkpoint_attention(checkpoint, args.export_attention, overrides,
                                                args.attention_episodes, args.attention_segments, args.per_head)
            files = sum(len(setting["files"]) for setting in index["settings"])
            if "note" in index:
                print(index["note"])
            print(f"attention: {files} files in {args.export_attention} (index: attention.json)")
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
