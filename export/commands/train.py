"""`inp-export train`: options from flags and an optional YAML file, then the training run."""

from __future__ import annotations

import argparse
from pathlib import Path

from edge.cli import Command
from edge.errors import ConfigError

ENCODER_CHOICES = ("efficientnet_lite0", "dinov2_vits14_reg4", "dinov2_vitb14_reg4", "dinov2_vitl14_reg4")
TRAIN_FLAG_FIELDS = (
    "data_root", "layout", "encoder", "encoder_weights", "epochs", "batch_size", "lr", "warmup_steps", "seed",
    "crop_px", "resize_px", "max_minutes", "num_threads", "resume_from", "out_dir",
)  # fmt: skip

DESCRIPTION = """\
Train an INP-Former on good images. One --category: single-class; several: one multi-class
model; --few-shot K: K images per category, each expanded to the paper's 22 fixed views.
The frozen encoder's features are computed once and cached (CPU speed). Writes checkpoint.pt
and train_log.json to --out; --resume continues the same schedule from a checkpoint (checked
before any encoding: a corrupt checkpoint or other settings are refused at once)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="YAML file whose keys are train options (flags win)")
    parser.add_argument("--data-root", type=Path, help="MVTec-layout root (<root>/<category>/train/good/*)")
    parser.add_argument(
        "--category",
        action="append",
        default=None,
        help="category to train on; repeat for one multi-class model (default: every category found)",
    )
    parser.add_argument(
        "--layout", choices=("mvtec", "folder"), help="'folder': --data-root holds good images"
    )
    parser.add_argument("--encoder", choices=ENCODER_CHOICES, help="default efficientnet_lite0 (offline)")
    parser.add_argument("--encoder-weights", type=Path, help="Meta's dinov2_*_reg4_pretrain.pth for DINOv2")
    parser.add_argument(
        "--few-shot", type=int, metavar="K", help="few-shot recipe: K good images per category"
    )
    parser.add_argument("--epochs", type=int, help="epochs (default 200, as in the paper)")
    parser.add_argument("--batch-size", type=int, help="default 16")
    parser.add_argument("--lr", type=float, help="peak learning rate (default 1e-3)")
    parser.add_argument("--warmup-steps", type=int, help="linear warm-up iterations (default 100)")
    parser.add_argument("--seed", type=int, help="default 1")
    parser.add_argument("--input-size", type=int, dest="crop_px", help="square input (centre crop), pixels")
    parser.add_argument("--resize", type=int, dest="resize_px", help="resize before the centre crop, pixels")
    parser.add_argument("--max-minutes", type=float, help="stop and save after this much wall time")
    parser.add_argument("--threads", type=int, dest="num_threads", help="torch threads (default: all CPUs)")
    parser.add_argument(
        "--no-feature-cache", action="store_true", help="encode every step (slow; for checks)"
    )
    parser.add_argument("--resume", type=Path, dest="resume_from", help="continue from this checkpoint")
    parser.add_argument("--out", type=Path, dest="out_dir", help="output folder (default runs/train)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def train_config_from(args: argparse.Namespace):
    """TrainConfig from an optional YAML file, overridden by the flags that were given."""
    from export.train_config import TRAIN_CONFIG_FIELDS, config_from_json

    values: dict = {} if args.config is None else read_train_yaml(Path(args.config), set(TRAIN_CONFIG_FIELDS))
    values.update(
        {name: getattr(args, name) for name in TRAIN_FLAG_FIELDS if getattr(args, name) is not None}
    )
    if args.category:
        values["categories"] = tuple(args.category)
    if args.few_shot is not None:
        values.update(mode="few-shot", shots=args.few_shot)
    if args.no_feature_cache:
        values["cache_features"] = False
    if "data_root" not in values:
        raise ConfigError("no training data given", fix="pass --data-root DIR (or data_root in --config)")
    return config_from_json(values)  # every invalid value (an unknown encoder too) is refused here


def read_train_yaml(path: Path, allowed: set[str]) -> dict:
    """The train options of a YAML file: a mapping whose keys are TrainConfig field names.

    Read like a station config (edge/config_yaml.py): a syntax error or a key written twice is
    refused with its line, and so is an unknown key; every problem of the file is listed at once.
    """
    from edge.config_checks import ConfigIssue
    from edge.config_yaml import FILE, parse_yaml, read_yaml_text

    text, issues = read_yaml_text(path)
    data, lines = None, {}
    if text is not None:
        data, lines, issues = parse_yaml(text)
    if isinstance(data, dict):
        choices = ", ".join(sorted(allowed))
        unknown = [str(key) for key in data if key not in allowed]
        issues += [ConfigIssue(key, "is not a train option", choices, lines.get(key)) for key in unknown]
    elif data is not None:
        issues.append(
            ConfigIssue(FILE, f"holds a {type(data).__name__}", "a mapping, one `option: value` a line")
        )
    if issues:
        listing = "\n".join(f"  {issue}" for issue in issues)
        raise ConfigError(
            f"train config {path} has {len(issues)} problem(s):\n{listing}",
            fix="correct them (the options are TrainConfig's fields, see `inp-export train --help`)",
        )
    return dict(data or {})


def run(args: argparse.Namespace) -> int:
    from export.train import train

    result = train(train_config_from(args), progress=not args.quiet)
    print(f"checkpoint: {result.checkpoint_path}")
    print(f"log:        {result.log_path}")
    print(
        f"steps {result.steps}/{result.total_steps} ({result.epochs_done:.1f} epochs), final loss "
        f"{result.final_loss:.4f}, {result.seconds / 60:.1f} min, stopped: {result.stop_reason}"
    )
    for note in result.notes:
        print(f"note: {note}")
    if result.stop_reason == "interrupted":
        print(f"interrupted: saved at step {result.steps}; continue with --resume {result.checkpoint_path}")
        return 130
    return 0


COMMAND = Command(
    name="train",
    help="train an INP-Former (single-, multi-class or few-shot)",
    description=DESCRIPTION,
    add_arguments=add_arguments,
    run=run,
)
