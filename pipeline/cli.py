"""The ``pipeline`` command: a thin layer of argument parsing over library functions.

Exit codes: 0 success, 1 bad data or a stage that cannot run, 2 bad config or usage,
130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import sys

from pipeline import __version__, synthetic
from pipeline.config import ConfigError, load_config
from pipeline.formats.common import DatasetError
from pipeline.logs import add_run_log, setup_logging
from pipeline.runner import Runner, StageError
from pipeline.stages import STAGE_NAMES, STAGES

logger = logging.getLogger("pipeline")

EPILOG = """\
examples:
  pipeline run configs/demo.yaml
  pipeline run configs/kitti_to_cityscapes.yaml run.name=quick data.on_bad_box=drop
  pipeline run configs/kitti_to_cityscapes.yaml --only prepare
  pipeline stages configs/kitti_to_cityscapes.yaml
  pipeline synth --out data/synthetic --seed 0
"""


def _stage_list(text: str) -> list[str]:
    return [s for s in text.split(",") if s]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pipeline",
        description="MGUIT domain-adaptation pipeline: prepare -> train_translator -> translate "
                    "-> train_detector -> evaluate -> metrics -> report -> inspect.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    stage_help = "\n".join(f"  {s.name:<17} {s.description}" for s in STAGES)
    run = sub.add_parser(
        "run", help="run the pipeline's stages for a config",
        description="Run the stages of an experiment in order. A stage whose config slice and "
                    "inputs are unchanged since it last finished is skipped.\n\nstages:\n"
                    + stage_help,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_config_args(run)
    run.add_argument("--only", type=_stage_list, action="extend", metavar="STAGE[,STAGE]",
                     help="run only these stages (repeatable)")
    run.add_argument("--from", dest="start", choices=STAGE_NAMES, metavar="STAGE",
                     help="start at this stage")
    run.add_argument("--to", dest="stop", choices=STAGE_NAMES, metavar="STAGE",
                     help="stop after this stage")
    run.add_argument("--force", action="store_true",
                     help="rerun the selected stages even when they are up to date")

    stages = sub.add_parser("stages", help="show each stage's state: done / stale / todo, and why")
    _add_config_args(stages)

    synth = sub.add_parser("synth", help="write the synthetic two-domain demo dataset",
                           description=(synthetic.__doc__ or "").split("\n\n")[0])
    synthetic.add_arguments(synth)
    return parser


def _add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="experiment YAML file (see configs/)")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides with dotted keys, e.g. run.name=quick")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # Overrides may come before or after options (`run CFG --only prepare run.name=x`), which
    # argparse's positional handling does not allow; collect the leftovers here.
    args, extra = parser.parse_known_args(argv)
    unknown = [e for e in extra if "=" not in e or e.startswith("-")]
    if unknown or (extra and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(unknown or extra)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    setup_logging(logging.DEBUG if args.verbose else logging.INFO)
    try:
        if args.command == "synth":
            return synthetic.run_from_args(args)
        config = load_config(args.config, args.overrides)
        runner = Runner(config)
        if args.command == "stages":
            return _print_stages(runner)
        if runner.is_main:
            add_run_log(runner.ctx.run_dir)
        logger.info("pipeline %s: run %s in %s", __version__, config.run.name,
                    runner.ctx.run_dir)
        runner.run(runner.select(args.only, args.start, args.stop), force=args.force)
        return 0
    except ConfigError as exc:
        logger.error("config error: %s", exc)
        return 2
    except (DatasetError, StageError) as exc:
        logger.error("%s", exc)
        return 1
    except KeyboardInterrupt:
        logger.error("interrupted; rerun the same command to resume")
        return 130


def _print_stages(runner: Runner) -> int:
    statuses = runner.statuses()
    width = max(len(s.stage) for s in statuses)
    print(f"run directory: {runner.ctx.run_dir}")
    for st in statuses:
        print(f"  {st.stage:<{width}}  {st.state:<15}  {st.reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
