"""`mnist`: train, export, evaluate, promote, rollback, list, and the end-to-end pipeline."""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import replace
from pathlib import Path

from training.checkpoint import CheckpointError
from training.config import FINETUNE, recipe
from training.data import DataNotFoundError, resolve_data_dir
from training.export import ExportError
from training.models import ARCHITECTURES, ModelConfig
from training.registry import DEFAULT_FLOOR, DEFAULT_MAX_DROP_PP, PromotionError

log = logging.getLogger("mnist")
D = argparse.ArgumentDefaultsHelpFormatter


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", help="MNIST root in torchvision's layout (default: $MNIST_DATA_DIR, else ./data)")
    p.add_argument("--download", action="store_true", help="let torchvision download MNIST (default for ./data)")


def _add_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--arch", default="mnist-cnn", choices=list(ARCHITECTURES), help="architecture")
    p.add_argument("--epochs", type=int, help="epochs (default: the architecture's recipe)")
    p.add_argument("--batch-size", type=int, help="batch size (recipe: 128)")
    p.add_argument("--lr", type=float, help="peak learning rate (recipe's)")
    p.add_argument("--optimizer", choices=["sgd", "adam", "adamw"], help="optimizer (recipe's)")
    p.add_argument("--channels", help="mnist-cnn's five conv widths, e.g. 16,16,32,48,64 (default: the model's)")
    p.add_argument("--seed", type=int, default=0, help="seed for init, shuffling and augmentation")
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="auto: CUDA when present")
    p.add_argument("--no-amp", action="store_true", help="disable mixed precision on CUDA")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, help="random affine (on for mnist-cnn)")
    p.add_argument("--ema-decay", type=float, help="EMA of the weights is what gets exported (recipe's; 0: off)")
    p.add_argument("--patience", type=int, help="early stop after N epochs without a better validation accuracy")
    p.add_argument("--limit-train", type=int, help="train on the first N training images only")
    p.add_argument("--run-dir", type=Path, help="where checkpoints, metrics and PNGs go (default: runs/ARCH)")
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/last.pt")
    p.add_argument("--init-from", type=Path, help="fine-tune: start from this checkpoint's weights")
    p.add_argument("--dry-run", action="store_true", help="1 epoch on 1,000 images, to check the setup quickly")
    _add_data_args(p)


def _add_promote_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--models-dir", type=Path, default=Path("models"), help="versioned models folder")
    p.add_argument("--floor", type=float, default=DEFAULT_FLOOR, help="minimum test accuracy (fraction)")
    p.add_argument(
        "--max-drop-pp", type=float, default=DEFAULT_MAX_DROP_PP, help="max accuracy drop vs the served model (pp)"
    )
    p.add_argument("--force", action="store_true", help="promote even when the guards refuse")
    p.add_argument("--no-serve", action="store_true", help="add the version but keep serving the current one")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mnist", description=__doc__, formatter_class=D)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train_args(sub.add_parser("train", help="train a model", formatter_class=D))

    p = sub.add_parser("export", help="checkpoint -> model.onnx + metadata.json", formatter_class=D)
    p.add_argument("checkpoint", type=Path, help="a best.pt or last.pt from `mnist train`")
    p.add_argument("--out", type=Path, help="output folder (default: CHECKPOINT's folder/export)")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset")
    _add_data_args(p)

    p = sub.add_parser("evaluate", help="test-set report of an ONNX model, with PNGs", formatter_class=D)
    p.add_argument("model", type=Path, help="model.onnx")
    p.add_argument("--out", type=Path, help="report folder (default: MODEL's folder/eval)")
    p.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads for the throughput numbers")
    _add_data_args(p)

    p = sub.add_parser("promote", help="copy an export into models/ and serve it", formatter_class=D)
    p.add_argument("export_dir", type=Path, help="folder with model.onnx + metadata.json")
    _add_promote_args(p)

    p = sub.add_parser("rollback", help="serve the previous (or the named) version", formatter_class=D)
    p.add_argument("version", nargs="?", help="version to serve (default: the previous one)")
    p.add_argument("--models-dir", type=Path, default=Path("models"), help="versioned models folder")

    p = sub.add_parser("list", help="versions in models/ and which one is served", formatter_class=D)
    p.add_argument("--models-dir", type=Path, default=Path("models"), help="versioned models folder")

    p = sub.add_parser("pipeline", help="train -> export -> evaluate -> promote", formatter_class=D)
    _add_train_args(p)
    _add_promote_args(p)
    p.add_argument("--no-promote", action="store_true", help="stop after evaluation")
    p.add_argument("--no-finetune", action="store_true", help="skip the architecture's fine-tuning stage")
    return parser


def _data_root(args: argparse.Namespace) -> tuple[Path, bool]:
    root, is_default = resolve_data_dir(args.data_dir)
    return root, args.download or is_default


def cmd_train(args: argparse.Namespace) -> Path:
    from training.checkpoint import load_checkpoint
    from training.train import train

    tc = recipe(
        args.arch, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer,
        seed=args.seed, workers=args.workers, device=args.device, augment=args.augment, patience=args.patience,
        limit_train=args.limit_train,
        ema_decay=args.ema_decay, amp=False if args.no_amp else None,
    )  # fmt: skip
    if args.dry_run:
        tc = replace(tc, epochs=1, limit_train=1000)
    run_dir = args.run_dir or Path("runs") / args.arch
    root, download = _data_root(args)
    mc = ModelConfig(arch=args.arch)
    if args.channels:
        mc = replace(mc, channels=tuple(int(c) for c in args.channels.split(",")))
    if args.init_from:
        mc = ModelConfig.from_dict(load_checkpoint(args.init_from)["model_config"])
    best = train(tc, mc, root, run_dir, resume=args.resume, download=download, init_from=args.init_from)
    print(f"wrote {best} (best validation accuracy), metrics and training_curves.png to {run_dir}")
    return best


def cmd_export(args: argparse.Namespace, checkpoint: Path | None = None) -> Path:
    from training.export import export_checkpoint

    checkpoint = checkpoint or args.checkpoint
    out = getattr(args, "out", None) or checkpoint.parent / "export"
    meta = export_checkpoint(checkpoint, out, _data_root(args)[0], getattr(args, "opset", 18))
    print(
        f"wrote {out}/model.onnx ({meta['version']}, test accuracy {100 * meta['test_accuracy']:.2f}%, "
        f"parity {meta['parity_max_abs_diff']:.1e}) and metadata.json"
    )
    return out


def cmd_evaluate(args: argparse.Namespace, model: Path | None = None) -> dict:
    from training.data import load_split
    from training.evaluate import evaluate_onnx, format_report

    model = model or args.model
    if not model.is_file():
        raise FileNotFoundError(f"no ONNX model at {model}")
    out = getattr(args, "out", None) or model.parent / "eval"
    x, y = (t.numpy() for t in load_split(_data_root(args)[0], train=False))
    report = evaluate_onnx(model, x, y, out, threads=getattr(args, "threads", 2))
    print(format_report(report))
    print(f"wrote report.json, confusion_matrix.png and misclassified.png to {out}")
    return report


def cmd_promote(args: argparse.Namespace, export_dir: Path | None = None) -> str:
    from contract import read_served
    from training.registry import promote

    version = promote(
        export_dir or args.export_dir, args.models_dir, args.floor, args.max_drop_pp, args.force, not args.no_serve
    )
    if args.no_serve:
        print(f"added {version} to {args.models_dir}; still serving {read_served(args.models_dir).served}")
    else:
        print(f"serving {version} from {args.models_dir} (rollback: mnist rollback)")
    return version


def cmd_rollback(args: argparse.Namespace) -> None:
    from training.registry import rollback

    print(f"serving {rollback(args.models_dir, args.version)} from {args.models_dir}")


def cmd_list(args: argparse.Namespace) -> None:
    from contract import read_served
    from training.registry import list_versions

    served = read_served(args.models_dir).served
    for m in list_versions(args.models_dir):
        mark = "*" if m.version == served else " "
        print(f"{mark} {m.version:28s} {100 * m.test_accuracy:.2f}%  {m.parameters or 0:>9,} params  {m.exported_at}")


def cmd_pipeline(args: argparse.Namespace) -> None:
    best = cmd_train(args)
    stage2 = FINETUNE.get(args.arch)
    if stage2 and not (args.no_finetune or args.dry_run):
        print(f"fine-tuning {best}: {stage2}")
        ft = argparse.Namespace(**{**vars(args), **stage2, "init_from": best, "run_dir": best.parent / "finetune"})
        best = cmd_train(ft)
    out = cmd_export(args, best)
    cmd_evaluate(args, out / "model.onnx")
    if args.no_promote or args.dry_run:
        print(f"not promoted ({'--dry-run' if args.dry_run else '--no-promote'}); export in {out}")
        return
    cmd_promote(args, out)


COMMANDS = {
    "train": cmd_train, "export": cmd_export, "evaluate": cmd_evaluate, "promote": cmd_promote,
    "rollback": cmd_rollback, "list": cmd_list, "pipeline": cmd_pipeline,
}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("onnxscript", "onnx_ir", "torch.onnx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    try:
        COMMANDS[args.command](args)
    except (DataNotFoundError, CheckpointError, ExportError, PromotionError, FileNotFoundError, ValueError) as exc:
        print(f"mnist {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mnist {args.command}: interrupted; `--resume` continues from the last epoch", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
