"""The ``actionfusion`` command line (also ``python -m actionfusion``).

Each subcommand is a thin layer over a library function; imports are lazy so that
``actionfusion --help`` answers at once.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable, List, Optional

from .. import __version__
from ..datasets.ntu.longtail_splits import MAX_RHO
from ..datasets.ntu.splits import BENCHMARKS
from .cli_errors import DefaultsHelpFormatter, OneLineArgumentParser, add_debug_option, run_with_error_boundary
from .cli_ray import add_ray_arguments
from .cli_types import float_in, frame_size, int_in, n_max_value, weight_list, workers

CONFIG_HELP = "a config name from `actionfusion configs` (synthetic/ctrgcn) or a YAML file"


def _cmd_synth(args: argparse.Namespace) -> int:
    from ..datasets.synthetic.generate import SynthConfig, generate_synthetic_ntu
    from ..errors import UsageError

    if args.out is not None and args.out_option is not None and args.out != args.out_option:
        raise UsageError(f"synth: two output folders ({args.out} and --out {args.out_option}); give one")
    args.out = args.out_option if args.out_option is not None else args.out
    if args.out is None:
        raise UsageError("synth: give the output folder: actionfusion synth --out DIR")
    config = SynthConfig(seed=args.seed, scale=args.scale)
    if args.rgb_size is not None:
        config = SynthConfig(seed=args.seed, scale=args.scale, rgb_size=args.rgb_size)
    if args.format in ("pku-mmd", "nw-ucla"):
        if args.rgb_size is not None:
            raise UsageError(f"--rgb-size: the {args.format} format holds skeletons only")
        if args.format == "pku-mmd":
            from ..datasets.synthetic.pku_mmd_format import PkuSynthConfig, write_synthetic_pku_mmd

            summary = write_synthetic_pku_mmd(Path(args.out), PkuSynthConfig.at_scale(args.scale, seed=args.seed,
                                                                                      version=args.pku_version))
        else:
            from ..datasets.synthetic.nw_ucla_format import UclaSynthConfig, write_synthetic_nw_ucla

            summary = write_synthetic_nw_ucla(Path(args.out), UclaSynthConfig.at_scale(args.scale, seed=args.seed))
        print(json.dumps(summary.to_dict()) if args.json else summary.summary_text())
        return 0
    if args.format == "videos":
        from ..datasets.synthetic.video_folder_format import write_synthetic_video_folder

        kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip())
        counts = write_synthetic_video_folder(Path(args.out), config, kinds=kinds, workers=args.workers,
                                              progress=not args.quiet)
        summary = {"out": args.out, "format": "videos", "classes": counts, "videos": sum(counts.values())}
        print(json.dumps(summary) if args.json else
              f"{args.out}: {summary['videos']} videos in {len(counts)} class folders ({', '.join(counts)})")
        return 0
    summary = generate_synthetic_ntu(Path(args.out), config, workers=args.workers, progress=not args.quiet)
    print(json.dumps(summary.to_dict()) if args.json else summary.summary_text())
    return 0


def _synth_kinds(text: str) -> str:
    """argparse type of ``synth --kinds``: a comma-separated subset of the class kinds."""
    from ..datasets.synthetic.video_folder_format import KINDS

    kinds = [k.strip() for k in text.split(",") if k.strip()]
    bad = [k for k in kinds if k not in KINDS]
    if not kinds or bad:
        raise argparse.ArgumentTypeError(f"{text!r}: give a comma-separated subset of {', '.join(KINDS)}")
    return text


NTU_ROOT_OPTIONS = ("modalities", "depth_size", "num_points", "ray", "point_sampling", "point_voxel_size",
                    "exclude_missing_skeletons")
"""``prepare`` options (argparse names) for NTU-format roots only."""
VIDEO_FOLDER_OPTIONS = ("labels", "benchmark", "val_fraction", "test_fraction")
"""``prepare`` options for a folder of videos only."""


def _given_options(args: argparse.Namespace, dests: tuple[str, ...]) -> list[str]:
    """The flags among ``dests`` (argparse names) that the command line set (a value, or a switch turned on)."""
    return ["--" + dest.replace("_", "-") for dest in dests if getattr(args, dest) not in (None, False)]


def _cmd_prepare(args: argparse.Namespace) -> int:
    from ..datasets.store.prepare import PrepareConfig, prepare_store
    from ..datasets.store.prepare_nw_ucla import is_nw_ucla_root
    from ..datasets.store.prepare_pku_mmd import is_pku_mmd_root
    from ..errors import UsageError
    from .video_folder import is_video_folder

    if is_pku_mmd_root(args.root) or is_nw_ucla_root(args.root):
        return _prepare_skeleton_dataset(args)
    if is_video_folder(args.root):
        return _prepare_video_folder(args)
    video_only = _given_options(args, VIDEO_FOLDER_OPTIONS)
    if video_only:
        raise UsageError(f"{video_only[0]} is for a folder of your own videos; {args.root} is an NTU-format root")
    overrides = {}
    if args.modalities:
        overrides["modalities"] = tuple(m.strip() for m in args.modalities.split(",") if m.strip())
    for key in ("rgb_size", "rgb_quality", "depth_size", "num_points", "max_actors", "point_sampling",
                "point_voxel_size"):
        value = getattr(args, key)
        if value is not None:
            overrides["rgb_jpeg_quality" if key == "rgb_quality" else key] = value
    if args.exclude_missing_skeletons:
        overrides["exclude_missing_skeletons"] = True
    config = PrepareConfig(**overrides)
    report = prepare_store(
        Path(args.root),
        Path(args.out),
        config,
        workers=args.workers,
        progress=not args.quiet,
        limit=args.limit,
        overwrite=args.overwrite,
        ray_address=args.ray,
    )
    print(json.dumps(report.to_dict()) if args.json else report.summary_text())
    return 0 if not report.failures or not args.strict else 3


def _prepare_skeleton_dataset(args: argparse.Namespace) -> int:
    """``prepare`` of a PKU-MMD or NW-UCLA root: trimmed skeleton clips and the benchmark files."""
    from ..datasets.store.prepare_nw_ucla import prepare_nw_ucla
    from ..datasets.store.prepare_pku_mmd import is_pku_mmd_root, prepare_pku_mmd
    from ..errors import UsageError

    given = _given_options(args, NTU_ROOT_OPTIONS + VIDEO_FOLDER_OPTIONS + (
        "rgb_size", "rgb_quality", "max_actors", "limit", "overwrite"))
    kind = "PKU-MMD" if is_pku_mmd_root(args.root) else "NW-UCLA"
    if given:
        raise UsageError(f"{given[0]} does not apply to {args.root}, a {kind} root (its skeleton clips and official "
                         "splits are imported as they are)")
    report = prepare_pku_mmd(args.root, args.out) if is_pku_mmd_root(args.root) else prepare_nw_ucla(args.root, args.out)
    print(json.dumps(report.to_dict()) if args.json else report.summary_text())
    return 0 if not report.failures or not args.strict else 3


def _prepare_video_folder(args: argparse.Namespace) -> int:
    """``prepare`` of a folder of your own videos (:mod:`.prepare_videos`)."""
    from ..errors import UsageError
    from .prepare_videos import prepare_videos

    ntu_only = _given_options(args, NTU_ROOT_OPTIONS)
    if ntu_only:
        raise UsageError(f"{ntu_only[0]} applies to NTU-format roots; {args.root} is a folder of videos "
                         "(poses, person crops and a split are prepared from it)")
    given = {keyword: getattr(args, dest) for keyword, dest in (
        ("labels_file", "labels"), ("benchmark", "benchmark"), ("val_fraction", "val_fraction"),
        ("test_fraction", "test_fraction"), ("rgb_size", "rgb_size"), ("rgb_quality", "rgb_quality"),
        ("max_persons", "max_actors"), ("limit", "limit")) if getattr(args, dest) is not None}
    report = prepare_videos(args.root, args.out, seed=args.seed, workers=args.workers, progress=not args.quiet,
                            **given)  # prepare_videos's defaults for the rest
    print(json.dumps(report.to_dict()) if args.json else report.summary_text())
    return 0 if not report.failures or not args.strict else 3


def _cmd_export_points(args: argparse.Namespace) -> int:
    from ..modalities.pointcloud.export import export_points
    from .data_builder import open_store

    written = export_points(open_store(args.store), args.name, Path(args.out), fmt=args.format, frames=args.frames)
    print(json.dumps({"sample": args.name, "format": args.format, "files": [str(p) for p in written]})
          if args.json else f"{len(written)} {args.format} files of {args.name} -> {args.out}")
    return 0


def _cmd_scan(args: argparse.Namespace) -> int:
    from ..datasets.ntu.index import scan_ntu_root

    index = scan_ntu_root(Path(args.root))
    report = index.summary()
    if args.list:
        report["per_sample"] = {name: sorted(paths.modalities()) for name, paths in index.samples.items()}
        report["ignored_files"] = [str(p) for p in index.ignored]
    print(json.dumps(report, indent=2))
    return 0


def _cmd_store_info(args: argparse.Namespace) -> int:
    from ..datasets.store.sample_store import SampleStore

    from ..datasets.benchmarks import available_benchmarks

    store = SampleStore(Path(args.store))
    summary = store.summary()
    summary["benchmarks"] = available_benchmarks(store)  # besides NTU's: data.benchmark may name any of them
    if not args.verify:
        print(json.dumps(summary, indent=2))
        return 0
    from ..datasets.store.store_verify import verify_store

    report = verify_store(store, progress=not args.quiet and sys.stderr.isatty())
    summary["verify"] = report.to_dict()
    print(json.dumps(summary, indent=2))
    if report.ok:
        return 0
    first = report.bad[0] if report.bad else (report.missing[0], "listed in manifest.json, folder missing")
    print(f"actionfusion store-info: error: {args.store}: {len(report.bad)} damaged and {len(report.missing)} missing "
          f"samples (first: {first[0]}: {first[1]}): prepare them again (`actionfusion prepare` redoes what is "
          "missing; remove a damaged sample's folder first)", file=sys.stderr)
    return 1


def _cmd_pack(args: argparse.Namespace) -> int:
    import yaml

    from ..datasets.store.shard_layout import parse_size
    from ..datasets.store.shard_pack import pack_store
    from ..errors import UsageError

    options = {}
    for item in args.storage_option or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--storage-option {item!r}: expected KEY=VALUE (e.g. endpoint_url=http://host:9000)")
        options[key] = yaml.safe_load(value)  # numbers and booleans typed, like --set
    try:
        shard_size = parse_size(args.shard_size)
    except ValueError as err:
        raise UsageError(f"--shard-size: {err}") from err
    report = pack_store(Path(args.store), args.out, shard_size=shard_size, storage_options=options,
                        overwrite=args.overwrite)
    print(json.dumps(report.to_dict()))
    return 0


def _cmd_lt_split(args: argparse.Namespace) -> int:
    from ..datasets.store.sample_store import SampleStore
    from ..datasets.store.split_files import write_longtail_split

    path, record = write_longtail_split(SampleStore(Path(args.store)), args.benchmark, args.rho, args.n_max, args.seed)
    print(json.dumps({"benchmark": record["benchmark"], "file": str(path), "total": record["num_train"],
                      "n_max": record["n_max"], "rho": record["rho"], "seed": record["seed"],
                      "counts": record["counts"]}))
    return 0


def _cmd_import_pyskl(args: argparse.Namespace) -> int:
    from ..datasets.store.pyskl_import import import_pyskl_pickle

    report = import_pyskl_pickle(Path(args.pickle), Path(args.out), trust_pickle=args.trust_pickle)
    print(json.dumps(report, indent=2))
    return 0


def _cmd_export_pyskl(args: argparse.Namespace) -> int:
    from ..datasets.store.pyskl_import import export_pyskl_pickle

    count = export_pyskl_pickle(Path(args.store), Path(args.out), modality=args.modality)
    print(json.dumps({"exported": count, "out": args.out}))
    return 0


def _cmd_visualize_poses(args: argparse.Namespace) -> int:
    from ..modalities.pose.visualize import run_visualize_poses

    store = None
    if args.store is not None:
        from ..datasets.store.sample_store import SampleStore

        store = SampleStore(args.store)
    print(run_visualize_poses(args.input, args.out, backend=args.backend, store=store,
                              num_frames=args.frames, device=args.device))
    return 0


def _config_overrides(args: argparse.Namespace) -> list:
    """``--set`` overrides plus those of ``--pretrained``, ``--strict``, ``--seed`` and ``--amp`` where the
    command has them."""
    overrides = list(args.set or [])
    if getattr(args, "seed", None) is not None:
        overrides.append(f"seed={args.seed}")
    if getattr(args, "amp", False):
        overrides.append("train.amp=true")
    if getattr(args, "strict", False):
        overrides.append("data.strict_samples=true")
    if getattr(args, "pretrained", None):
        overrides.append(f"model.pretrained={args.pretrained}")
    return overrides


def _cmd_train(args: argparse.Namespace) -> int:
    from .trainer import run_train_cli

    if args.print_config:
        import yaml

        from .config import load_config

        print(yaml.safe_dump(load_config(args.config, _config_overrides(args)).to_dict(), sort_keys=False), end="")
        return 0
    return run_train_cli(args.config, _config_overrides(args), args.work_dir, args.resume, args.allow_config_change)


def _cmd_pretrain(args: argparse.Namespace) -> int:
    from .pretrain import run_pretrain_cli

    return run_pretrain_cli(args.config, args.set or [], args.work_dir, args.resume, args.allow_config_change)


def _cmd_probe(args: argparse.Namespace) -> int:
    from .probe import run_probe_cli

    return run_probe_cli(args.config, args.pretrained, args.protocol, args.set or [], args.work_dir,
                         percent=args.percent, seeds=args.seeds, epochs=args.epochs, resume=args.resume,
                         allow_config_change=args.allow_config_change,
                         calibrate_random_bn=not args.initial_bn_statistics, source_config=args.source_config,
                         source_overrides=args.source_set or [])


def _cmd_run(args: argparse.Namespace) -> int:
    from .run_experiment import run_cli

    return run_cli(args.config, args.set or [], args.work_dir, args.raw_root, args.workers)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .trainer import run_evaluate_cli

    return run_evaluate_cli(args.config, args.checkpoint, _config_overrides(args), args.split, args.work_dir)


def _cmd_robustness(args: argparse.Namespace) -> int:
    from .robustness import run_robustness_cli

    return run_robustness_cli(args.config, args.checkpoint, args.models or [], args.set or [], args.corruptions,
                              args.levels, args.completion, args.seed, args.out, args.completion_weights)


def _cmd_fuse(args: argparse.Namespace) -> int:
    from .metrics import fuse_scores

    weights = list(args.weights) if args.weights else None
    print(json.dumps(fuse_scores(args.scores, weights, args.out), sort_keys=True))
    return 0


def _cmd_extract_poses(args: argparse.Namespace) -> int:
    from .extract_poses import run_extract_poses_cli

    return run_extract_poses_cli(args)


def _cmd_pose3d_train(args: argparse.Namespace) -> int:
    from .pose3d import run_pose3d_train

    run_pose3d_train(args.config, args.set or [], args.work_dir)
    return 0


def _cmd_pose3d_evaluate(args: argparse.Namespace) -> int:
    from .pose3d import run_pose3d_evaluate

    run_pose3d_evaluate(args.config, args.checkpoint, args.set or [])
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from ..errors import UsageError
    from ..registry import list_models

    names = list_models(args.pattern, modality=args.modality, pretrained=args.pretrained)
    if not names:
        raise UsageError(f"no model matches {args.pattern!r}" + (f" for modality {args.modality!r}" if args.modality else "")
                         + ": run `actionfusion models` for all of them")
    print("\n".join(names))
    return 0


def _cmd_configs(args: argparse.Namespace) -> int:
    from ..errors import UsageError
    from .config_names import config_description, configs_root, list_config_names

    names = list_config_names(args.pattern)
    if not names:
        where = "" if configs_root() is not None else " (this installation ships no configs folder)"
        raise UsageError(f"no config name matches {args.pattern!r}{where}: run `actionfusion configs` for all of them")
    width = max(len(name) for name in names)
    try:
        for name in names:
            description = "" if args.names_only else config_description(name)
            print(f"{name:<{width}}  {description}" if description else name, flush=True)
    except BrokenPipeError:  # `actionfusion configs | head`: the reader has what it wanted
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(Path(args.out), seed=args.seed, workers=args.workers, scale=args.scale,
                    train_overrides=tuple(args.set or ()))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = OneLineArgumentParser(
        prog="actionfusion",
        description="Multimodal human action recognition from RGB-D recordings.",
    )
    parser.add_argument("--version", action="version", version=f"actionfusion {__version__}")
    add_debug_option(parser, top_level=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("synth", help="write the synthetic dataset in NTU RGB+D's on-disk layout")
    p.add_argument("--out", dest="out_option", default=None,
                   help="output root (ntu: gets nturgb+d_skeletons/, nturgb+d_rgb/, nturgb+d_depth_masked/), as every "
                        "command takes it")
    p.add_argument("out", nargs="?", default=None, help="the output root given positionally, as before --out existed")
    p.add_argument("--format", default="ntu", choices=("ntu", "videos", "pku-mmd", "nw-ucla"),
                   help="ntu: NTU RGB+D's layout; videos: RGB renders only, in class sub-folders (OUT/<class>/take_NNNN.avi), "
                        "as a folder of your own videos; pku-mmd: untrimmed skeleton sequences, labels and split files "
                        "(MAMP's layout); nw-ucla: all_sqe/*.json skeletons of 3 views")
    p.add_argument("--pku-version", default="v1", choices=("v1", "v2"), help="pku-mmd: which release's layout")
    p.add_argument("--kinds", default="motion", type=_synth_kinds,
                   help="videos: comma-separated class kinds to render (motion, object, interaction)")
    p.add_argument("--seed", type=int_in(0, 2**31 - 1), default=0, help="dataset seed: outputs are a pure function of it")
    p.add_argument("--scale", default="default", choices=("tiny", "default", "large"),
                   help="dataset size: tiny (tests), default (the `make demo` set: 360 samples), large (1,800)")
    p.add_argument("--rgb-size", type=frame_size, default=None,
                   help="RGB video size WxH, e.g. 1920x1080 (default: scaled down)")
    p.add_argument("--workers", type=workers, default=2, help="rendering processes")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON line")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_synth)

    p = sub.add_parser("prepare", help="prepare an NTU-format root, or a folder of your own videos, into a sample "
                                       "store (resumable)")
    p.add_argument("root", help="NTU-format root (any subset of skeletons, RGB, masked depth), or a folder of videos: "
                                "class sub-folders (ROOT/<class>/<video>), --labels FILE, or unlabelled")
    p.add_argument("--out", required=True, help="store directory")
    p.add_argument("--modalities", default=None, help="comma-separated subset of skeleton,rgb,depth,points")
    p.add_argument("--rgb-size", type=int, default=None,
                   help="side of the square RGB person crop (default 192; videos: 0 = no crops)")
    p.add_argument("--rgb-quality", type=int, default=None, help="JPEG quality of the stored RGB frames (default 75)")
    p.add_argument("--depth-size", type=int, default=None, help="side of the square depth crop (default 56)")
    p.add_argument("--num-points", type=int, default=None, help="points per frame (default 256)")
    p.add_argument("--point-sampling", default=None, choices=("random", "fps", "voxel_fps", "open3d_fps"),
                   help="how each frame's points are sampled (default open3d_fps, chosen by measurement; a store "
                        "prepared before it used voxel_fps with --point-voxel-size 0.02)")
    p.add_argument("--point-voxel-size", type=float_in(0.0, 1.0, low_open=True), default=None,
                   help="voxel edge of voxel_fps, metres (default 0.05)")
    p.add_argument("--max-actors", type=int, default=None,
                   help="actors (NTU) or tracked people (videos) kept per sample (default: NTU 2, videos all)")
    p.add_argument("--labels", default=None, help="videos: CSV with a header video,label[,split] (paths relative to ROOT)")
    p.add_argument("--benchmark", default=None, help="videos: name of the benchmark file written into STORE/splits "
                                                     "(default videos); train with data.benchmark: NAME")
    p.add_argument("--val-fraction", type=float_in(0.0, 0.9), default=None,
                   help="videos: share of each class held out for validation when the labels give no split (default 0.1)")
    p.add_argument("--test-fraction", type=float_in(0.01, 0.9), default=None,
                   help="videos: share of each class held out for testing (default 0.2)")
    p.add_argument("--seed", type=int_in(0, 2**31 - 1), default=0, help="videos: seed of the split (default 0)")
    p.add_argument("--workers", type=workers, default=2, help="worker processes (videos: pose models, one each)")
    p.add_argument("--limit", type=int_in(0, 10**9), default=None, help="prepare at most this many samples")
    p.add_argument(
        "--exclude-missing-skeletons",
        action="store_true",
        help="leave out the official missing-skeleton samples and samples without a .skeleton file",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="discard a store prepared with a different config and start over"
    )
    p.add_argument("--strict", action="store_true", help="exit with status 3 if any sample failed")
    p.add_argument("--json", action="store_true", help="print the report as one JSON line")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_ray_arguments(p)
    p.set_defaults(func=_cmd_prepare)

    p = sub.add_parser("export-points", help="write a stored sample's point clouds as .ply or .pcd files "
                                             "(one per frame, through open3d)")
    p.add_argument("store", help="a prepared sample store (folder, or a sharded store's URL)")
    p.add_argument("name", help="the sample name")
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument("--format", default="ply", choices=("ply", "pcd"), help="file format")
    p.add_argument("--frames", type=int, nargs="+", default=None,
                   help="frame indices (negative: from the end; default: every frame)")
    p.add_argument("--json", action="store_true", help="print the written files as one JSON line")
    p.set_defaults(func=_cmd_export_points)

    p = sub.add_parser("scan", help="index an NTU-format root: which sample has which modality")
    p.add_argument("root")
    p.add_argument("--list", action="store_true", help="also list every sample's modalities and ignored files")
    p.set_defaults(func=_cmd_scan)

    p = sub.add_parser("store-info", help="summarise a prepared store: samples per class and split, shapes")
    p.add_argument("store")
    p.add_argument("--verify", action="store_true",
                   help="check every sample's files against its meta.json; exit 1 if any is damaged or missing")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_store_info)

    p = sub.add_parser("pack", help="write a store as WebDataset tar shards to a folder or object storage "
                                    "(s3://bucket/prefix); train from it with --set data.store=URL")
    p.add_argument("store", help="a prepared sample store (folder)")
    p.add_argument("--out", required=True, help="a folder or fsspec URL (s3://bucket/prefix, gs://bucket/prefix)")
    p.add_argument("--shard-size", default="1GB", help="bytes per shard (default 1GB; e.g. 256MB)")
    p.add_argument("--storage-option", action="append", metavar="KEY=VALUE",
                   help="an fsspec option of --out, e.g. endpoint_url=http://127.0.0.1:9000 (credentials come from "
                        "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)")
    p.add_argument("--overwrite", action="store_true", help="replace a sharded store already at --out")
    p.set_defaults(func=_cmd_pack)

    p = sub.add_parser("lt-split", help="write a long-tailed training split (BRL's NTU-LT) into a store: "
                                        "then train with --set data.benchmark=<base>_lt<rho>")
    p.add_argument("store", help="a prepared sample store; the split goes to STORE/splits/<base>_lt<rho>.json")
    p.add_argument("--benchmark", required=True, choices=BENCHMARKS, help="the base benchmark whose training set "
                   "is thinned (its test set stays unchanged)")
    p.add_argument("--rho", type=int_in(2, MAX_RHO), required=True,
                   help="imbalance factor: the first class keeps n_max samples, the last n_max/rho (BRL: 10, 50, 100)")
    p.add_argument("--n-max", type=n_max_value, default="auto",
                   help="training samples of the first class, or 'auto': the benchmark's (600; 400 for "
                        "ntu120_xset), lowered to the largest the store's classes can supply")
    p.add_argument("--seed", type=int_in(0, 2**31 - 1), default=0, help="seeds each class's random draw")
    p.set_defaults(func=_cmd_lt_split)

    p = sub.add_parser("import-pyskl", help="import a pyskl/mmaction2 annotation pickle into a store")
    p.add_argument("pickle")
    p.add_argument("--out", required=True, help="store directory")
    p.add_argument(
        "--trust-pickle",
        action="store_true",
        help="acknowledge that loading a pickle can run arbitrary code; required",
    )
    p.set_defaults(func=_cmd_import_pyskl)

    p = sub.add_parser("export-pyskl", help="write a store's skeletons or 2D poses as a pyskl annotation pickle")
    p.add_argument("store")
    p.add_argument("--out", required=True, help="output .pkl")
    p.add_argument("--modality", default="skeleton", choices=("skeleton", "pose2d"))
    p.set_defaults(func=_cmd_export_pyskl)

    p = sub.add_parser("train", help="train a model from a YAML config (torchrun for several GPUs or nodes)")
    p.add_argument("config", help=CONFIG_HELP)
    p.add_argument("--set", action="append", default=None, metavar="KEY=VALUE",
                   help="override a config value, e.g. --set data.clip_len=32 (repeatable)")
    p.add_argument("--cfg-options", nargs="+", action="extend", dest="set", metavar="KEY=VALUE",
                   help="mmaction2-style alias of --set taking several KEY=VALUE at once")
    p.add_argument("--work-dir", default=None, help="output directory (default work_dirs/<experiment>)")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in the work dir")
    p.add_argument("--allow-config-change", action="store_true",
                   help="with --resume: go on although the config changed, recording it as config.resume_N.yaml")
    p.add_argument("--pretrained", default=None, metavar="WEIGHTS",
                   help="start from an encoder written by `actionfusion pretrain` (= --set model.pretrained=WEIGHTS)")
    p.add_argument("--strict", action="store_true",
                   help="fail on a partial sample (one lacking a modality the config reads) instead of leaving it "
                        "out and counting it (= --set data.strict_samples=true)")
    p.add_argument("--seed", type=int_in(0, 2**31 - 1), default=None, help="the run's seed (= --set seed=N)")
    p.add_argument("--amp", action="store_true", help="mixed precision on CUDA (= --set train.amp=true)")
    p.add_argument("--print-config", action="store_true",
                   help="print the resolved config (bases merged, overrides applied) as YAML and exit")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("pretrain", help="self-supervised pretraining of an encoder (objective: mamp, ...)",
                       formatter_class=DefaultsHelpFormatter)
    p.add_argument("config", help="config with an objective section, a name or a YAML file, e.g. synthetic/mamp_pretrain")
    p.add_argument("--set", action="append", default=None, metavar="KEY=VALUE",
                   help="override a config value, e.g. --set schedule.epochs=10 (repeatable)")
    p.add_argument("--cfg-options", nargs="+", action="extend", dest="set", metavar="KEY=VALUE",
                   help="mmaction2-style alias of --set taking several KEY=VALUE at once")
    p.add_argument("--work-dir", default=None, help="output directory (default work_dirs/<experiment>)")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in the work dir")
    p.add_argument("--allow-config-change", action="store_true",
                   help="with --resume: go on although the config changed, recording it as config.resume_N.yaml")
    p.set_defaults(func=_cmd_pretrain)

    p = sub.add_parser("probe", help="evaluate a pretrained encoder: linear, knn, finetune, semi, fewshot or transfer",
                       formatter_class=DefaultsHelpFormatter)
    p.add_argument("config", help="the downstream config (model, data, fine-tune recipe), a name or a YAML file, e.g. synthetic/mamp_probe")
    p.add_argument("--pretrained", default=None, metavar="WEIGHTS",
                   help="encoder.safetensors from `actionfusion pretrain` (omit for the random-init baseline)")
    p.add_argument("--protocol", required=True, choices=("linear", "knn", "finetune", "semi", "fewshot", "transfer"))
    p.add_argument("--source-config", default=None, metavar="PRETRAIN_CONFIG",
                   help="transfer: the pretraining config of the source benchmark (pretrained into WORK_DIR/pretrain)")
    p.add_argument("--source-set", action="append", default=None, metavar="KEY=VALUE",
                   help="transfer: override a value of the source config (repeatable)")
    p.add_argument("--percent", type=float_in(0.0, 100.0, low_open=True), default=10.0, help="semi: labelled share of the training split, in percent")
    p.add_argument("--seeds", type=int_in(1, 1000), default=1, help="runs with seeds 0..N-1 (semi: a different subset each)")
    p.add_argument("--epochs", type=int_in(1, 10**6), default=None, help="training epochs (default: the protocol's recipe)")
    p.add_argument("--set", action="append", default=None, metavar="KEY=VALUE", help="override a config value")
    p.add_argument("--cfg-options", nargs="+", action="extend", dest="set", metavar="KEY=VALUE",
                   help="mmaction2-style alias of --set taking several KEY=VALUE at once")
    p.add_argument("--work-dir", default=None, help="output directory (default work_dirs/<experiment>_<protocol>)")
    p.add_argument("--resume", action="store_true", help="continue unfinished runs")
    p.add_argument("--allow-config-change", action="store_true",
                   help="with --resume: go on although the config changed, recording it as config.resume_N.yaml")
    p.add_argument("--initial-bn-statistics", action="store_true",
                   help="random-init baseline of linear/knn/fewshot: keep the encoder's initial BatchNorm statistics "
                        "(by default they are re-estimated on the training clips)")
    p.set_defaults(func=_cmd_probe)

    p = sub.add_parser("run", help="raw data to results: prepare (+ pose extraction), train, evaluate (resumable)")
    p.add_argument("config", help=CONFIG_HELP)
    p.add_argument("--raw-root", default=None, help="NTU-format root to prepare into data.store (= --set source.raw_root=...)")
    p.add_argument("--set", action="append", default=None, metavar="KEY=VALUE",
                   help="override a config value, e.g. --set source.pose_source=extracted (repeatable)")
    p.add_argument("--cfg-options", nargs="+", action="extend", dest="set", metavar="KEY=VALUE",
                   help="mmaction2-style alias of --set taking several KEY=VALUE at once")
    p.add_argument("--work-dir", default=None, help="output directory (default work_dirs/<experiment>)")
    p.add_argument("--workers", type=workers, default=None, help="processes for prepare and pose extraction "
                   "(default source.workers)")
    p.set_defaults(func=_cmd_run)

    from .official_checkpoints.convert_cli import add_convert_checkpoint_parser
    from .feature_export import add_extract_features_parser
    from .onnx_export_cli import add_export_onnx_parser
    from .live.live_cli import add_live_parsers
    from .detection.detect_cli import add_detect_parsers

    add_extract_features_parser(sub)
    add_export_onnx_parser(sub)
    add_live_parsers(sub)
    add_detect_parsers(sub)
    add_convert_checkpoint_parser(sub)

    p = sub.add_parser("evaluate", help="evaluate a checkpoint on a split (default: test)")
    p.add_argument("config", help=CONFIG_HELP)
    p.add_argument("--checkpoint", required=True, help="weights file, epoch checkpoint dir or a work dir (its best)")
    p.add_argument("--split", default="test", choices=("train", "val", "test"))
    p.add_argument("--set", action="append", default=None, metavar="KEY=VALUE")
    p.add_argument("--cfg-options", nargs="+", action="extend", dest="set", metavar="KEY=VALUE",
                   help="mmaction2-style alias of --set taking several KEY=VALUE at once")
    p.add_argument("--work-dir", default=None, help="where to write metrics, confusion PNG and per-class table")
    p.add_argument("--strict", action="store_true",
                   help="fail on a partial sample (one lacking a modality the config reads) instead of leaving it "
                        "out and counting it (= --set data.strict_samples=true)")
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("robustness", help="accuracy of a trained skeleton model on the corrupted test split "
                       "(frame drop, block drop, subsampling, part occlusion, jitter at minor/moderate/severe)")
    p.add_argument("config", nargs="?", default=None, help="the model's config (omit with --models)")
    p.add_argument("--checkpoint", default=None, help="weights file, epoch checkpoint dir or a work dir (its best)")
    p.add_argument("--models", nargs="+", default=None, metavar="WORKDIR",
                   help="training work dirs (config.yaml + best.safetensors) to score and draw on one figure")
    p.add_argument("--corruptions", default="all",
                   help="comma-separated: frame_drop, block_drop, uniform_subsample, random_subsample, "
                        "joint_occlusion, jitter, or all")
    p.add_argument("--levels", default="minor,moderate,severe", help="comma-separated subset of minor,moderate,severe")
    p.add_argument("--completion", default="none", choices=("none", "interpolate", "duplicate", "finetec"),
                   help="how the lost frames are filled before the model reads them")
    p.add_argument("--completion-weights", default=None, metavar="PATH",
                   help="FineTec's completion network (encoder.safetensors of `actionfusion pretrain "
                        "configs/synthetic/finetec_completion.yaml`); needed by --completion finetec")
    p.add_argument("--seed", type=int_in(0, 2**31 - 1), default=0, help="seed of the corruptions")
    p.add_argument("--set", action="append", default=None, metavar="KEY=VALUE",
                   help="override a config value (every model's with --models), e.g. --set data.store=STORE")
    p.add_argument("--cfg-options", nargs="+", action="extend", dest="set", metavar="KEY=VALUE",
                   help="mmaction2-style alias of --set taking several KEY=VALUE at once")
    p.add_argument("--out", default=None,
                   help="output folder for robustness.json/.md/.png (default: <checkpoint work dir>/robustness)")
    p.set_defaults(func=_cmd_robustness)

    p = sub.add_parser("fuse", help="late-fuse saved stream scores (e.g. joint, bone, motion) with weights")
    p.add_argument("scores", nargs="+", help="scores_<split>.npy files from training runs")
    p.add_argument("--weights", type=weight_list, default=None, help="comma-separated, e.g. 2,2,1,1 (default: equal)")
    p.add_argument("--out", default=None, help="directory for fused_metrics.json and fused_scores.npy")
    p.set_defaults(func=_cmd_fuse)

    p = sub.add_parser(
        "extract-poses", help="extract 2D (and world 3D) poses of many videos into a store (resumable)"
    )
    from .extract_poses import add_extract_poses_arguments

    add_extract_poses_arguments(p)
    p.set_defaults(func=_cmd_extract_poses)

    p = sub.add_parser(
        "visualize-poses",
        help="draw keypoints over a video (poses extracted) or a store sample (its pose2d over its RGB crop)",
    )
    p.add_argument("input", metavar="VIDEO_OR_SAMPLE", help="a video file, or a sample name of --store")
    p.add_argument("--out", required=True, help="output: .png (a strip of --frames frames) or .mp4")
    p.add_argument("--backend", default="default", help="pose backend for a video (default: BlazePose)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--store", default=None, help="sample store that holds VIDEO_OR_SAMPLE")
    p.add_argument("--frames", type=int_in(1, 1000), default=6, help="frames in a PNG strip")
    p.set_defaults(func=_cmd_visualize_poses)

    p = sub.add_parser("pose3d", help="UniPose weakly supervised 3D pose (train / evaluate; MPJPE, mAP@10cm)")
    pose3d = p.add_subparsers(dest="pose3d_command", required=True, metavar="STEP")
    q = pose3d.add_parser(
        "train", help="train the point network, then the depth/RGB A2J lifting networks on its pseudo-labels"
    )
    q.add_argument("config", help=CONFIG_HELP)
    q.add_argument("--set", action="append", default=None, metavar="KEY=VALUE")
    q.add_argument("--cfg-options", nargs="+", action="extend", dest="set", metavar="KEY=VALUE",
                   help="mmaction2-style alias of --set taking several KEY=VALUE at once")
    q.add_argument("--work-dir", default=None)
    q.set_defaults(func=_cmd_pose3d_train)
    q = pose3d.add_parser("evaluate", help="evaluate a train run against the held-out 3D reference")
    q.add_argument("config", help=CONFIG_HELP)
    q.add_argument("--checkpoint", required=True, help="the train run's work dir")
    q.add_argument("--set", action="append", default=None, metavar="KEY=VALUE")
    q.add_argument("--cfg-options", nargs="+", action="extend", dest="set", metavar="KEY=VALUE",
                   help="mmaction2-style alias of --set taking several KEY=VALUE at once")
    q.set_defaults(func=_cmd_pose3d_evaluate)

    p = sub.add_parser("configs", help="list the config names every command accepts in place of a YAML path "
                       "(`actionfusion train synthetic/ctrgcn`), with each config's first comment line",
                       formatter_class=DefaultsHelpFormatter)
    p.add_argument("pattern", nargs="?", default=None, metavar="PATTERN",
                   help="shell-style pattern, e.g. 'synthetic/*'; a word without wildcards lists the names holding it")
    p.add_argument("--names-only", action="store_true", help="print the names alone, one per line")
    p.set_defaults(func=_cmd_configs)

    p = sub.add_parser("models", help="list the registered models (timm's list_models); --pretrained: the released "
                       "official checkpoints as name.tag, loadable with create_model(name, pretrained=tag)",
                       formatter_class=DefaultsHelpFormatter)
    p.add_argument("pattern", nargs="?", default="", metavar="PATTERN", help="shell-style pattern, e.g. '*gcn*'")
    p.add_argument("--modality", default=None, help="only this modality's models (skeleton, rgb, depth, points, ...)")
    p.add_argument("--pretrained", action="store_true", help="only released checkpoints, one name.tag a line")
    p.set_defaults(func=_cmd_models)

    p = sub.add_parser("demo", help="the main job on the embedded synthetic dataset")
    p.add_argument("--out", default="demo_output")
    p.add_argument("--seed", type=int_in(0, 2**31 - 1), default=0, help="dataset seed: outputs are a pure function of it")
    p.add_argument("--scale", default="default", choices=("tiny", "default", "large"),
                   help="dataset size: tiny (tests), default (the `make demo` set: 360 samples), large (1,800)")
    p.add_argument("--workers", type=workers, default=2)
    p.add_argument("--set", action="append", default=None, metavar="KEY=VALUE",
                   help="override a value of the demo's training config, e.g. --set schedule.epochs=5")
    p.add_argument("--cfg-options", nargs="+", action="extend", dest="set", metavar="KEY=VALUE",
                   help="mmaction2-style alias of --set taking several KEY=VALUE at once")
    p.set_defaults(func=_cmd_demo)
    for command in sub.choices.values():
        add_debug_option(command)
        for action in command._actions:  # nested steps (pose3d train / evaluate)
            if isinstance(action, argparse._SubParsersAction):
                for step in action.choices.values():
                    add_debug_option(step)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Run the command line; returns the exit status (see :mod:`.cli_errors`)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.func
    return run_with_error_boundary(args.command, lambda: handler(args), debug=bool(getattr(args, "debug", False)))
