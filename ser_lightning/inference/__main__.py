"""``python -m ser_lightning {export,timeline,infer}`` (also ``python -m ser_lightning.inference ...``).

- ``export CKPT -o model.onnx [--check 100]``: front-end + network to ONNX with its metadata; ``--check N``
  compares onnxruntime with PyTorch on N random utterances and fails above ``--tolerance``.
- ``timeline MODEL AUDIO... -o DIR [--window 3 --hop 1]``: ``DIR/<stem>.timeline.csv`` and ``.png`` per file.
- ``infer MODEL INPUTS... -o DIR``: ``predict``'s files (``predictions.csv``/``.json``, per-frame CSVs for a
  regressor) without a DataModule; ``MODEL`` is a checkpoint or an ``.onnx`` export.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

log = logging.getLogger("ser_lightning")


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Inference outside training: export, timeline, infer.")
    sub = parser.add_subparsers(dest="command", required=True)

    export = sub.add_parser("export", help="export a checkpoint to ONNX (front-end + network)")
    export.add_argument("checkpoint", type=Path, help="the .ckpt file")
    export.add_argument("-o", "--output", type=Path, required=True, help="the .onnx file to write")
    export.add_argument("--check", type=int, default=0, metavar="N",
                        help="compare with PyTorch on N random utterances (0: no check)")  # fmt: skip
    export.add_argument("--tolerance", type=float, default=1e-4, help="largest allowed abs. difference (--check)")

    for name, helptext in (("timeline", "emotion over time of long recordings (CSV + plot)"),
                           ("infer", "predict files/folders with the Python API (CSV + JSON)")):  # fmt: skip
        cmd = sub.add_parser(name, help=helptext)
        cmd.add_argument("model", type=Path, help="a checkpoint (.ckpt) or an ONNX export (.onnx)")
        cmd.add_argument("inputs", nargs="+", type=Path, help="audio files or folders")
        cmd.add_argument("-o", "--output-dir", type=Path, required=True, help="where to write the results")
        cmd.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:<k> (checkpoints)")
        cmd.add_argument("--batch-size", type=int, default=16, help="inputs (or windows) per model call")
    timeline = sub.choices["timeline"]
    timeline.add_argument("--window", type=float, default=3.0, help="window length in seconds")
    timeline.add_argument("--hop", type=float, default=1.0, help="hop between windows in seconds")
    sub.choices["infer"].add_argument("--formats", nargs="+", choices=["csv", "json"], default=["csv", "json"])
    return parser


def main(args: list[str] | None = None, prog: str = "python -m ser_lightning") -> int:
    """Runs the inference commands.

    Args:
        args: command-line arguments (default: ``sys.argv[1:]``).
        prog: program name in the help.

    Returns:
        The exit status (0 on success; 1 when an export check fails).
    """
    options = _parser(prog).parse_args(args)
    if not log.handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from ser_lightning.inference.api import EmotionRecognizer, audio_files

    if options.command == "export":
        from ser_lightning.inference.export import check_parity, export_onnx
        from ser_lightning.models.base import SERTask

        task = SERTask.load_from_checkpoint(options.checkpoint, map_location="cpu")
        path = export_onnx(task, options.output)
        print(f"wrote {path}")
        if options.check:
            report = check_parity(task, path, utterances=options.check)
            print(json.dumps(report))
            if report["max_abs_diff"] > options.tolerance or report["argmax_mismatches"]:
                print(f"parity check failed (tolerance {options.tolerance})", file=sys.stderr)
                return 1
        return 0

    recognizer = EmotionRecognizer.load(options.model, device=options.device, batch_size=options.batch_size)
    if options.command == "infer":
        records = recognizer.predict(options.inputs)
        for path in recognizer.write(records, options.output_dir, formats=options.formats)[:2]:
            print(f"wrote {path}")
        return 0

    from ser_lightning.errors import AudioReadError
    from ser_lightning.inference.timeline import emotion_timeline

    status = 0
    for path in audio_files(options.inputs):
        try:
            timeline = emotion_timeline(recognizer, path, window_s=options.window, hop_s=options.hop)
        except AudioReadError as err:
            log.error("%s", err)
            status = 1
            continue
        csv_path = timeline.write_csv(options.output_dir / f"{path.stem}.timeline.csv")
        png_path = timeline.plot(options.output_dir / f"{path.stem}.timeline.png")
        print(f"wrote {csv_path} and {png_path}")
    return status


if __name__ == "__main__":
    sys.exit(main(prog="python -m ser_lightning.inference"))
