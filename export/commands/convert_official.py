"""`inp-export convert-official`: the authors' released model.pth → our checkpoint + encoder file.

See docs/official-checkpoints.md. The torch-heavy library is imported inside ``run``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edge.cli import Command

DESCRIPTION = """\
Convert an INP-Former checkpoint released by the authors (luow23/INP-Former,
saved_results/<name>/model.pth: the whole state_dict, frozen DINOv2 encoder included) into an
inp-export checkpoint. Every key of the file is checked against our model (names and shapes);
any unknown, missing or mis-shaped key is refused with its name. Writes --out, the encoder as
<variant>_pretrain.pth beside it (Meta's key layout), and <out>.source.json (file, sha256,
release settings). Evaluate the result with
  inp-export evaluate --checkpoint OUT --encoder-weights <the encoder file> --data-root DIR"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--official", type=Path, required=True, help="the authors' model.pth")
    parser.add_argument(
        "--out", type=Path, required=True, help="the checkpoint to write (e.g. runs/official/mvtec.pt)"
    )
    parser.add_argument(
        "--variant",
        help="dinov2_vit{s,b,l}14_reg4 or their dinov2reg_vit_{small,base,large}_14 (default: from the shapes)",
    )
    parser.add_argument("--data-root", type=Path, help="MVTec-layout set to record for evaluation")
    parser.add_argument(
        "--category", action="append", default=None, help="category to record (default: all in --data-root)"
    )
    parser.add_argument("--input-size", type=int, dest="input_size_px", help="input px (default 392)")


def run(args: argparse.Namespace) -> int:
    from export.official_convert import convert_official_checkpoint

    result = convert_official_checkpoint(
        args.official,
        args.out,
        variant=args.variant,
        input_size_px=args.input_size_px,
        data_root=args.data_root,
        categories=tuple(args.category or ()),
    )
    print(f"{result.layout.variant}, M={result.layout.num_inps} INPs: every key of {args.official} loaded")
    print(f"checkpoint:      {result.checkpoint_path}")
    print(f"encoder weights: {result.encoder_weights_path}")
    print(f"source record:   {result.source_path}")
    return 0


COMMAND = Command(
    name="convert-official",
    help="the authors' released INP-Former model.pth as an inp-export checkpoint",
    description=DESCRIPTION,
    add_arguments=add_arguments,
    run=run,
)
