"""The ``pipeline`` command: a thin layer of argument parsing over library functions.

Exit codes: 0 success, 1 bad data, a stage that cannot run or a file system failure, 2 bad
config or usage, 130 interrupted (Ctrl-C), 143 terminated (SIGTERM).
"""

from __future__ import annotations

import argparse
import errno
import logging
import signal
import sys
import threading
from pathlib import Path

from pipeline import __version__, ablation, synthetic
from pipeline.config import (NAMED_WEIGHTS, ConfigError, MetricsConfig, TranslateConfig,
                             check_seed, load_config)
from pipeline.formats.common import DatasetError
from pipeline.lock import LockError
from pipeline.logs import add_run_log, setup_logging
from pipeline.runner import Runner, StageError
from pipeline.stages import STAGE_NAMES, STAGES
from pipeline.translation import Shard, TranslationError

logger = logging.getLogger("pipeline")

EPILOG = """\
examples:
  pipeline run configs/demo.yaml
  pipeline run configs/kitti_to_cityscapes.yaml run.name=quick data.on_bad_box=drop
  pipeline run configs/kitti_to_cityscapes.yaml --only prepare
  pipeline stages configs/kitti_to_cityscapes.yaml
  pipeline synth --out data/synthetic --seed 0
  pipeline metrics --real runs/demo/data/target_val.json \
      --fake runs/demo/translated/annotations.json --inception-weights weights/inception.pth
  pipeline ablate configs/demo.yaml
  pipeline translate --checkpoint runs/demo/translator/checkpoints/last.pt \
      --input data/kitti/training --output runs/kitti_translated
  pipeline inspect runs/demo
  pipeline export runs/demo --set translated --format yolo --out exports/demo_yolo
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
    _add_progress_arg(run)

    stages = sub.add_parser("stages", help="show each stage's state: done / stale / todo, and why")
    _add_config_args(stages)

    weights = sub.add_parser(
        "weights", help="list the pretrained weight files a config needs; --download fetches them",
        description="Every weight file the config's stages will need (detector.weights: "
                    "imagenet, metrics.*_weights: default, or a local path), where it is looked "
                    "for, and whether it is there. Exit status 1 while something is missing: "
                    "prefetch on a machine with a network, then run offline.")
    _add_config_args(weights)
    weights.add_argument("--download", action="store_true", help="fetch the missing files")
    _add_progress_arg(weights)
    weights.add_argument("--cache", type=Path, metavar="DIR",
                         help="cache root instead of the libraries' own (sets TORCH_HOME=DIR/torch "
                              "and FVCORE_CACHE=DIR/iopath_cache; export them for the runs)")

    synth = sub.add_parser("synth", help="write the synthetic two-domain demo dataset",
                           description=(synthetic.__doc__ or "").split("\n\n")[0])
    synthetic.add_arguments(synth)
    _add_translate_parser(sub)
    _add_metrics_parser(sub)

    ablate = sub.add_parser(
        "ablate", help="the paper's ablation: single/class-aware memory x triplet/contrastive "
                       "loss, one table",
        description="Train and evaluate the paper's four memory variants (section 4.3, "
                    "Table 4) on the same data, once per seed: runs/<name>_<variant>_s<seed>/ "
                    "for sm_tl, sm_cl, cm_tl, cm_cl (prepare through metrics, resuming what is "
                    "done), each seed's source-only and oracle detectors in "
                    "runs/<name>_reference_s<seed>/, then one table (every seed, mean ± std) "
                    "in runs/<name>_ablation/ablation.{json,md}. --labels adds the target "
                    "label modes (boxes, none, pseudo) as rows <variant>_<mode>.")
    _add_config_args(ablate)
    ablate.add_argument("--variants", type=_stage_list, default=list(ablation.VARIANT_KEYS),
                        metavar="V[,V]", help="variants to run (default: "
                        f"{','.join(ablation.VARIANT_KEYS)})")
    ablate.add_argument("--seeds", type=_seed_list, default=None, metavar="S[,S]",
                        help="seeds (run.seed) to run every variant with, e.g. 0,1,2 "
                             "(default: the config's run.seed)")
    ablate.add_argument("--labels", type=_stage_list, default=None, metavar="MODE[,MODE]",
                        help="target label modes (data.target.labels) to run every variant "
                             "with: boxes, none, pseudo (default: the config's)")
    ablate.add_argument("--no-reference", dest="reference", action="store_false",
                        help="skip the source-only and oracle detectors (no gap-recovered "
                             "figure)")
    ablate.add_argument("--force", action="store_true",
                        help="rerun every stage of the variants even when up to date")
    _add_progress_arg(ablate)
    _add_inspection_parsers(sub)
    return parser


def _seed_list(text: str) -> list[int]:
    parts = [p.strip() for p in text.split(",")]
    if not parts or not all(p.isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of seeds "
                                         "(non-negative integers), e.g. 0,1,2")
    seeds = [int(p) for p in parts]
    if len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"{text!r} repeats a seed")
    for seed in seeds:
        try:
            check_seed("a seed", seed)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return seeds


def _shard(text: str) -> Shard:
    try:
        return Shard.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_translate_parser(sub: argparse._SubParsersAction) -> None:
    d = TranslateConfig()
    p = sub.add_parser(
        "translate", help="translate a labeled dataset with a trained checkpoint (no config)",
        description="Translate every image of a KITTI root or COCO manifest at native "
                    "resolution: DIR/image_2/*.png (same names and sizes), DIR/label_2/*.txt "
                    "(copies of the source labels), DIR/annotations.json (COCO), "
                    "DIR/manifest.jsonl (hashes). Rerunning resumes. With --num-samples K > 1 "
                    "the files are named <id>_s<k>.png / <id>_s<k>.txt. Under torchrun each "
                    "rank translates its shard and rank 0 merges.",
    )
    p.add_argument("--checkpoint", metavar="PATH", help="MGUIT training checkpoint (last.pt)")
    p.add_argument("--method", choices=("mguit", "colour_transfer", "fda"), default="mguit",
                   help="mguit (--checkpoint) or a baseline: Reinhard colour transfer or FDA, "
                        "styled after --reference (default mguit)")
    p.add_argument("--reference", metavar="MANIFEST.json",
                   help="the target images the baselines (and MGUIT with --style exemplar) "
                        "take their style from: a COCO manifest with info.image_root, e.g. "
                        "runs/<name>/data/target_train.json")
    p.add_argument("--style", choices=("memory", "exemplar", "scene"), default="memory",
                   help="MGUIT's styles: the memory's values (the paper, the default here: "
                        "it needs no target images); sample by sample, those of one "
                        "--reference image (exemplar); or that image's background and the "
                        "memory's object classes (scene, the pipeline's default: the target's "
                        "image-to-image light)")
    p.add_argument("--fda-beta", type=float, default=d.fda_beta, metavar="BETA",
                   help=f"FDA's low-frequency window, floor(min(H, W) * BETA) (default "
                        f"{d.fda_beta})")
    p.add_argument("--colour-transfer-reference", choices=("image", "split"),
                   default=d.colour_transfer_reference,
                   help="Reinhard's target statistics: one --reference image's per sample, or "
                        "the whole reference set's for sample 0 (default "
                        f"{d.colour_transfer_reference})")
    p.add_argument("--input", metavar="KITTI_ROOT|MANIFEST.json",
                   help="a KITTI root (image_2/, label_2/) or a COCO manifest from prepare")
    p.add_argument("--output", required=True, metavar="DIR", help="output folder")
    p.add_argument("--direction", choices=("source_to_target", "target_to_source"),
                   default=d.direction)
    p.add_argument("--num-samples", type=int, default=d.num_samples, metavar="K",
                   help=f"style samples per image (default {d.num_samples})")
    p.add_argument("--seed", type=int, default=d.seed, metavar="S",
                   help="seed of the random styles of samples k >= 1")
    p.add_argument("--shard", type=_shard, metavar="I/N",
                   help="translate only shard I of N (0-based); the last to finish merges")
    p.add_argument("--batch-size", type=int, default=d.batch_size, metavar="B")
    p.add_argument("--workers", type=int, default=d.workers, metavar="W",
                   help=f"decoding processes (default {d.workers})")
    p.add_argument("--writers", type=int, default=d.writers, metavar="W",
                   help=f"PNG encoding threads (default {d.writers})")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default auto)")
    p.add_argument("--no-amp", dest="amp", action="store_false",
                   help="no float16 autocast on CUDA")
    p.add_argument("--no-channels-last", dest="channels_last", action="store_false")
    p.add_argument("--png-compress-level", type=int, default=d.png_compress_level,
                   metavar="0-9", help=f"zlib level (default {d.png_compress_level})")
    p.add_argument("--on-bad-image", choices=("error", "skip"), default=d.on_bad_image)
    p.add_argument("--overwrite", action="store_true",
                   help="replace a translation with other settings found in DIR")
    p.add_argument("--merge", action="store_true",
                   help="only merge the shards in DIR (run apart, copied together)")
    _add_progress_arg(p)


def _add_metrics_parser(sub: argparse._SubParsersAction) -> None:
    d = MetricsConfig()
    p = sub.add_parser(
        "metrics", help="FID, KID, IS (and style distance, LPIPS diversity, CIS) between two "
                        "image sets (no config)",
        description="Translation quality of --fake against --real, each a folder of images "
                    "(searched recursively) or a COCO manifest: FID and KID (Inception-v3 "
                    "features), IS (Inception-v3 or --classifier), the per-class style "
                    "distance (needs boxes: manifests), and, when --fake is a translate "
                    "output with several samples per image, LPIPS diversity and CIS. Weights "
                    "are local files; a metric without its weights is skipped. Definitions: "
                    "README, Translation quality.")
    p.add_argument("--real", required=True, metavar="DIR|MANIFEST.json",
                   help="the target-domain images")
    p.add_argument("--fake", required=True, metavar="DIR|MANIFEST.json",
                   help="the translated images (a translate output: its annotations.json)")
    p.add_argument("--source", metavar="MANIFEST.json",
                   help="the untranslated inputs: the style distance's reference")
    p.add_argument("--inception-weights", metavar="PATH",
                   help="torch-fidelity's weights-inception-2015-12-05-6726825d.pth "
                        "(FID, KID, IS)")
    p.add_argument("--lpips-weights", metavar="PATH",
                   help="torchvision's alexnet-owt-7be5be79.pth (LPIPS diversity)")
    p.add_argument("--classifier", metavar="PATH",
                   help="TorchScript classifier for IS and CIS: float RGB (B, 3, H, W) in "
                        "[0, 1] -> (B, C) logits (default: Inception-v3)")
    p.add_argument("--out", metavar="FILE", help="write the results here as JSON "
                                                 "(default: print them)")
    p.add_argument("--batch-size", type=int, default=d.batch_size, metavar="B")
    p.add_argument("--seed", type=int, default=d.seed, metavar="S",
                   help="seeds KID's subsets and IS's splits")
    p.add_argument("--workers", type=int, default=2, metavar="W",
                   help="image decoding threads (default 2)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default auto)")


def _metrics(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    import json

    from mguit.distributed import resolve_device
    from detection.manifest import write_text
    from pipeline.metrics.errors import MetricsError
    from pipeline.metrics.images import read_image_set
    from pipeline.config import MetricsConfig
    from pipeline.metrics.suite import (WeightNames, compare_image_sets, format_summary,
                                        load_networks)

    if args.batch_size < 1 or args.workers < 1:
        parser.error("--batch-size and --workers must be >= 1")
    try:
        device = resolve_device(args.device)
    except RuntimeError as exc:
        parser.error(str(exc))
    real, fake = read_image_set(args.real), read_image_set(args.fake)
    source = read_image_set(args.source) if args.source else None
    try:
        networks = load_networks(args.inception_weights, args.lpips_weights, args.classifier,
                                 device, WeightNames("--inception-weights", "--lpips-weights",
                                                     "--classifier"))
        document = compare_image_sets(real, fake, source, networks,
                                      MetricsConfig(batch_size=args.batch_size,
                                                    seed=args.seed),
                                      args.workers, device)
    except MetricsError as exc:
        logger.error("%s", exc)
        return 1
    text = json.dumps(document, indent=2) + "\n"
    if args.out:
        write_text(args.out, text)
    else:
        sys.stdout.write(text)
    logger.info("translation quality of %s against %s%s\n%s", fake.origin, real.origin,
                f" -> {args.out}" if args.out else "", format_summary(document))
    return 0


def _add_progress_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-progress", action="store_true",
                        help="draw no progress bars (they are drawn only on a terminal anyway)")


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
    previous = _stop_on_sigterm()
    try:
        if args.command == "synth":
            return synthetic.run_from_args(args)
        if args.command == "translate":
            return _translate(parser, args)
        if args.command == "metrics":
            return _metrics(parser, args)
        if args.command == "ablate":
            return _ablate(parser, args)
        if args.command in ("inspect", "export"):
            return _inspection(args)
        if args.command == "weights":
            return _weights(args)
        config = load_config(args.config, args.overrides)
        runner = Runner(config, progress=not getattr(args, "no_progress", False))
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
    except (DatasetError, StageError, TranslationError, LockError) as exc:
        logger.error("%s", exc)
        return 1
    except Terminated:
        logger.error("terminated (SIGTERM); rerun the same command to resume")
        return 143
    except KeyboardInterrupt:
        logger.error("interrupted; rerun the same command to resume")
        return 130
    except OSError as exc:
        logger.error("%s", _os_error_message(exc))
        return 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler's stop, ``kill``): unwinds like Ctrl-C, so that what a stage holds
    (lock, open logs, temporary files) is released and the run can resume."""


def _stop_on_sigterm():
    """Make SIGTERM raise :class:`Terminated`; returns the handler to restore (None when not
    on the main thread, where signals cannot be handled)."""
    def handler(signum: int, frame: object) -> None:
        raise Terminated()

    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, handler)


def _os_error_message(exc: OSError) -> str:
    """One line for a failure of the file system: the path, what happened, what to do."""
    where = exc.filename or "a file"
    what = exc.strerror or str(exc)
    if exc.errno == errno.ENOSPC:
        advice = ("free space on that disk (or point run.dir / --output elsewhere), then rerun "
                  "the same command to resume")
    elif exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        advice = "write somewhere this user may write (run.dir, --output, --out)"
    else:
        advice = "check the path, then rerun the same command to resume"
    return f"{where}: {what}; {advice}"


def _weights(args: argparse.Namespace) -> int:
    import os

    from pipeline.weights import WeightsError, fetch, local_path, local_status, needed_files

    if args.cache is not None:
        os.environ["TORCH_HOME"] = str(args.cache.resolve() / "torch")
        os.environ["FVCORE_CACHE"] = str(args.cache.resolve() / "iopath_cache")
    config = load_config(args.config, args.overrides)
    named = needed_files(config)
    rows, failed = [("key", "status", "path", "url")], False
    for key in NAMED_WEIGHTS:
        section, name = key.rsplit(".", 1)
        value = getattr(config.section(section), name)
        if value is None:
            rows.append((key, "not set: random init / metric skipped", "", ""))
            continue
        if key not in named:
            path = local_path(config, key, value)
            status = local_status(path)
            rows.append((key, status, str(path), "local file"))
            failed |= status != "present"
            continue
        weight = named[key]
        if args.download and weight.status() != "present":
            try:
                fetch(weight, progress=not args.no_progress)
            except WeightsError as exc:
                logger.error("%s", exc)
        status = weight.status()
        failed |= status != "present"
        rows.append((key, status, str(weight.path), weight.url))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths)), row[3])
    if failed:
        print("missing or unusable files: run `pipeline weights CONFIG --download` with a "
              "network, or put each file at the path shown", file=sys.stderr)
    return 1 if failed else 0


def _translate(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from pipeline.translation import merge_outputs, translate_dataset

    if args.merge:
        summary = merge_outputs(args.output)
        logger.info("merged %d outputs into %s", summary.reused, summary.output)
        return 0
    baseline = args.method != "mguit"
    if not baseline and not (args.checkpoint and args.input):
        parser.error("translate needs --checkpoint and --input (or --merge)")
    if not baseline and args.style != "memory" and not args.reference:
        parser.error(f"translate --style {args.style} needs --reference")
    if baseline and not (args.reference and args.input):
        parser.error(f"translate --method {args.method} needs --reference and --input")
    if baseline and args.checkpoint:
        parser.error(f"--checkpoint is MGUIT's; --method {args.method} takes --reference")
    options = TranslateConfig(
        direction=args.direction, num_samples=args.num_samples, seed=args.seed,
        batch_size=args.batch_size, workers=args.workers, writers=args.writers, amp=args.amp,
        channels_last=args.channels_last, png_compress_level=args.png_compress_level,
        on_bad_image=args.on_bad_image, fda_beta=args.fda_beta, style=args.style,
        colour_transfer_reference=args.colour_transfer_reference)
    try:
        options.validate()
    except ValueError as exc:
        parser.error(f"invalid option: {exc}")
    if baseline:
        from pipeline.translation.methods import build_baseline

        method = build_baseline(args.method, Path(args.reference), options, Path(args.output),
                                not args.no_progress)
        translate_dataset(args.input, args.output, options=options, method=method,
                          shard=args.shard, overwrite=args.overwrite,
                          progress=not args.no_progress)
    else:
        translate_dataset(args.input, args.output, args.checkpoint, options,
                          device=args.device, shard=args.shard, overwrite=args.overwrite,
                          reference=args.reference if options.uses_reference else None,
                          progress=not args.no_progress)
    return 0


def _ablate(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    unknown = [v for v in args.variants if v not in ablation.VARIANT_KEYS]
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(unknown)} "
                     f"(variants: {', '.join(ablation.VARIANT_KEYS)})")
    modes = [m for m in args.labels or () if m not in ablation.LABEL_MODES]
    if modes:
        parser.error(f"unknown --labels mode(s) {', '.join(modes)} "
                     f"(modes: {', '.join(ablation.LABEL_MODES)})")
    ablation.run_ablation(args.config, args.overrides, tuple(args.variants), seeds=args.seeds,
                          labels=args.labels, force=args.force, reference=args.reference,
                          progress=not args.no_progress)
    return 0


def _port(text: str) -> int:
    if not (text.isdigit() and 0 < int(text) < 65536):
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port (1-65535)")
    return int(text)


def _add_inspection_parsers(sub: argparse._SubParsersAction) -> None:
    from pipeline.config import InspectConfig
    from pipeline.inspection.export import FORMATS, SETS

    d = InspectConfig()
    p = sub.add_parser(
        "inspect", help="look at a run in the FiftyOne App (builds or refreshes its dataset)",
        description="Build or refresh the run's FiftyOne dataset (grouped: source / translated "
                    "/ target slices, ground truth, each detector's predictions and "
                    "evaluate_detections results), then serve the App on it until Ctrl-C. "
                    "The settings come from RUN_DIR/config.resolved.yaml (inspect: section).")
    p.add_argument("run_dir", metavar="RUN_DIR", help="the run's folder, runs/<name>")
    p.add_argument("--port", type=_port, metavar="PORT",
                   help=f"the App's port (default inspect.port, {d.port})")
    p.add_argument("--remote", action="store_true",
                   help=f"listen on every interface (0.0.0.0), not inspect.address "
                        f"({d.address}); anyone who can reach this machine sees the App")
    p.add_argument("--no-app", dest="app", action="store_false",
                   help="only build or refresh the dataset")
    e = sub.add_parser(
        "export", help="write a set of a run as COCO, YOLO, VOC or KITTI (via FiftyOne)",
        description="Export the images and boxes of one set of a run, with the run's classes "
                    "in the config's order. DIR is written whole or not at all.")
    e.add_argument("run_dir", metavar="RUN_DIR", help="the run's folder, runs/<name>")
    e.add_argument("--set", dest="set_name", required=True, choices=SETS,
                   help="translated: translated/annotations.json (every style sample); the "
                        "others: data/<set>.json")
    e.add_argument("--format", required=True, choices=FORMATS)
    e.add_argument("--out", required=True, metavar="DIR", help="output folder")
    e.add_argument("--overwrite", action="store_true", help="replace a non-empty DIR")


def _inspection(args: argparse.Namespace) -> int:
    from pipeline.inspection import InspectionError, app, runfiles
    from pipeline.inspection.dataset import build_dataset
    from pipeline.inspection.export import export_set

    try:
        ctx = runfiles.load_run(args.run_dir)
        add_run_log(ctx.run_dir)
        logger.info("pipeline %s: %s %s", __version__, args.command, ctx.run_dir)
        if args.command == "export":
            export_set(ctx, args.set_name, args.format, args.out, overwrite=args.overwrite)
            return 0
        summary = build_dataset(ctx)
        if args.app:
            address, port = app.app_address(ctx.config.inspect, args.remote, args.port)
            app.serve(summary.name, ctx.config.inspect.database_dir, address, port)
        return 0
    except InspectionError as exc:
        logger.error("%s", exc)
        return 1


def _print_stages(runner: Runner) -> int:
    statuses = runner.statuses()
    width = max(len(s.stage) for s in statuses)
    print(f"run directory: {runner.ctx.run_dir}")
    for st in statuses:
        print(f"  {st.stage:<{width}}  {st.state:<15}  {st.reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
