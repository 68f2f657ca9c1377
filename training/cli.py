"""`mnist`: data, train, train-detector, export, evaluate, promote, rollback, list, and the end-to-end pipeline.

The parsed arguments are turned into plain values and configs here, once; the commands below
take only those (STYLE.md: never hand a Namespace down the call chain).
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeAlias, TypeVar

from contract import read_served
from training.checkpoint import CheckpointError
from training.config import FINETUNE, TrainConfig, recipe
from training.data import DataNotFoundError, ensure_mnist, resolve_data_dir
from training.detector import DetectorConfig
from training.export import DEFAULT_OPSET, ExportError
from training.head import HeadConfig
from training.models import ARCHITECTURES, ModelConfig
from training.registry import DEFAULT_FLOOR, DEFAULT_MAX_DROP_PP, PromotionError

log = logging.getLogger("mnist")


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", help="MNIST root in torchvision's layout (default: $MNIST_DATA_DIR, else ./data)")
    p.add_argument("--download", action="store_true", help="let torchvision download MNIST (always on for ./data)")


def _add_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--arch", default="mnist-cnn", choices=list(ARCHITECTURES), help="architecture (default: mnist-cnn)")
    p.add_argument("--epochs", type=int, help="epochs (default: the architecture's recipe)")
    p.add_argument("--batch-size", type=int, help="batch size (recipe: 128)")
    p.add_argument("--lr", type=float, help="peak learning rate (recipe's)")
    p.add_argument("--optimizer", choices=["sgd", "adam", "adamw"], help="optimizer (recipe's)")
    p.add_argument("--channels", help="mnist-cnn's five conv widths, e.g. 16,16,32,48,64 (default: the model's)")
    p.add_argument("--seed", type=int, default=0, help="seed for init, shuffling and augmentation (default: 0)")
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes (default: 0)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="auto (default): CUDA if present")
    p.add_argument("--no-amp", action="store_true", help="disable mixed precision on CUDA")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, help="augment the training images (recipe's)")
    p.add_argument(
        "--augment-kind",
        choices=["affine", "upload", "rendered"],
        help="affine: random affine only; upload: + elastic, thickness, low-res, blur, noise; rendered: upload, "
        "with a share of the digits drawn as photos and framed by the service's code (recipe's: affine)",
    )
    p.add_argument(
        "--rendered-share", type=float, help="rendered: share of each batch drawn as uploads (default: 0.35)"
    )
    p.add_argument("--label-smoothing", type=float, help="label smoothing (recipe's)")
    p.add_argument("--schedule", choices=["none", "onecycle"], help="learning-rate schedule (recipe's)")
    p.add_argument("--weight-decay", type=float, help="weight decay (recipe's)")
    p.add_argument("--teacher", nargs="+", help="distil from the ensemble of these best.pt checkpoints")
    p.add_argument("--distill-alpha", type=float, help="weight of the teacher's soft targets (default: 0.7)")
    p.add_argument("--distill-temperature", type=float, help="distillation temperature (default: 4)")
    p.add_argument("--val-size", type=int, help="images held out for validation (default: 6000; 0: none)")
    p.add_argument("--ema-decay", type=float, help="EMA of the weights is what gets exported (recipe's; 0: off)")
    p.add_argument("--patience", type=int, help="early stop after N epochs without a better validation accuracy")
    p.add_argument("--limit-train", type=int, help="train on the first N training images only")
    p.add_argument("--run-dir", type=Path, help="where checkpoints, metrics and PNGs go (default: runs/ARCH)")
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/last.pt")
    p.add_argument("--init-from", type=Path, help="fine-tune: start from this checkpoint's (or model.onnx's) weights")
    p.add_argument("--dry-run", action="store_true", help="1 epoch on 1,000 images, to check the setup quickly")
    _add_data_args(p)


def _add_models_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--models-dir", type=Path, default=Path("models"), help="versioned models folder (default: models)")


def _add_promote_args(p: argparse.ArgumentParser) -> None:
    _add_models_dir(p)
    p.add_argument(
        "--floor",
        type=float,
        default=DEFAULT_FLOOR,
        help=f"minimum test accuracy, a fraction (default: {DEFAULT_FLOOR})",
    )
    p.add_argument(
        "--max-drop-pp",
        type=float,
        default=DEFAULT_MAX_DROP_PP,
        help=f"max accuracy drop vs the served model, in pp (default: {DEFAULT_MAX_DROP_PP})",
    )
    p.add_argument("--force", action="store_true", help="promote even when the guards refuse")
    p.add_argument("--no-serve", action="store_true", help="add the version but keep serving the current one")


def build_parser() -> argparse.ArgumentParser:
    """`mnist` and its subcommands, each with its defaults in its help."""
    parser = argparse.ArgumentParser(prog="mnist", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("data", help="check MNIST's files (sha256), downloading them into ./data when missing")
    _add_data_args(p)

    _add_train_args(sub.add_parser("train", help="train a model"))
    _add_export_parser(sub)
    _add_beside_classifier_parser(
        sub,
        "train-detector",
        "train the non-digit detector beside an exported classifier (kept frozen)",
        Path("runs/detector"),
        DetectorConfig(),
        DETECTOR_FLAGS,
    )
    _add_beside_classifier_parser(
        sub,
        "train-head",
        "train the digit head on an exported classifier's frozen trunk (the cheap detector)",
        Path("runs/head"),
        HeadConfig(),
        HEAD_FLAGS,
    )
    _add_evaluate_parsers(sub)

    p = sub.add_parser("promote", help="copy an export into models/ and serve it")
    p.add_argument("export_dir", type=Path, help="folder with model.onnx + metadata.json")
    _add_promote_args(p)

    p = sub.add_parser("rollback", help="serve the previous (or the named) version")
    p.add_argument("version", nargs="?", help="version to serve (default: the previous one)")
    _add_models_dir(p)

    p = sub.add_parser("list", help="versions in models/ and which one is served")
    _add_models_dir(p)

    p = sub.add_parser("pipeline", help="train -> export -> evaluate -> promote")
    _add_train_args(p)
    _add_promote_args(p)
    p.add_argument("--no-promote", action="store_true", help="stop after evaluation")
    p.add_argument("--no-finetune", action="store_true", help="skip the architecture's fine-tuning stage")
    return parser


Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _add_export_parser(sub: Subparsers) -> None:
    p = sub.add_parser("export", help="checkpoint -> model.onnx + metadata.json")
    p.add_argument("checkpoint", type=Path, help="best.pt or last.pt from `mnist train`, or a model.onnx to re-export")
    p.add_argument("--out", type=Path, help="output folder (default: CHECKPOINT's folder/export)")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default: {DEFAULT_OPSET})")
    p.add_argument(
        "--no-temperature",
        action="store_true",
        help="export uncalibrated (default: fit a temperature on validation and fold it into the graph)",
    )
    p.add_argument(
        "--detector",
        type=Path,
        help="detector.pt from `mnist train-detector` beside this model.onnx: adds the digit_score output",
    )
    _add_data_args(p)


@dataclass(frozen=True)
class ConfigFlag:
    """A flag that sets one field of a frozen config; its type and default are the field's."""

    field: str
    help: str  # formatted with the field's default: "... (default: {default})"

    @property
    def flag(self) -> str:
        return "--" + self.field.replace("_", "-")


DETECTOR_FLAGS = (
    ConfigFlag("epochs", "passes over the training digits (default: {default})"),
    ConfigFlag("turned", "share of training negatives drawn mirrored or turned (default: {default})"),
    ConfigFlag("negatives_per_kind", "training negatives of each kind (default: {default:,})"),
    ConfigFlag("keep", "share of validation digits the threshold keeps (default: {default})"),
    ConfigFlag("seed", "negatives and initial weights (default: {default})"),
)
HEAD_FLAGS = (
    ConfigFlag("epochs", "(default: {default})"),
    ConfigFlag("keep", "share of every validation digit kind the threshold keeps (default: {default})"),
    ConfigFlag("fine", "channels the head keeps of the trunk's 14x14 map, 0 for none (default: {default})"),
    ConfigFlag("seed", "(default: {default})"),
)
Config = TypeVar("Config", DetectorConfig, HeadConfig)


def _add_beside_classifier_parser(
    sub: Subparsers, name: str, help_text: str, run_dir: Path, defaults: object, flags: tuple[ConfigFlag, ...]
) -> None:
    """A command that trains beside an exported classifier (kept frozen), its config set by `flags`."""
    p = sub.add_parser(name, help=help_text)
    p.add_argument("classifier", type=Path, help="the exported mnist-cnn model.onnx it will be served with")
    p.add_argument("--run-dir", type=Path, default=run_dir, help=f"output folder (default: {run_dir})")
    for f in flags:
        default = getattr(defaults, f.field)
        p.add_argument(f.flag, type=type(default), default=default, help=f.help.format(default=default))
    _add_data_args(p)


def _config(args: argparse.Namespace, cls: type[Config], flags: tuple[ConfigFlag, ...]) -> Config:
    """The config the command's flags describe (the others at their defaults)."""
    return cls(**{f.field: getattr(args, f.field) for f in flags})


def _add_evaluate_parsers(sub: Subparsers) -> None:
    """evaluate (one model on the test set) and compare (seeds side by side)."""
    p = sub.add_parser("evaluate", help="test-set report of an ONNX model, with PNGs")
    p.add_argument("model", type=Path, help="model.onnx")
    p.add_argument("--out", type=Path, help="report folder (default: MODEL's folder/eval)")
    p.add_argument(
        "--threads", type=int, default=2, help="onnxruntime intra-op threads for the speed numbers (default: 2)"
    )
    _add_data_args(p)

    p = sub.add_parser("compare", help="seeds side by side: validation and test accuracy, mean +- sd, ensemble")
    p.add_argument(
        "checkpoints", nargs="+", type=Path, help="best.pt files of runs, or versions' model.onnx, to compare"
    )
    p.add_argument("--json", type=Path, help="also write the numbers here")
    _add_data_args(p)


@dataclass(frozen=True)
class Data:
    """Where MNIST is and whether torchvision may fetch it there."""

    root: Path
    download: bool

    @classmethod
    def from_args(cls, data_dir: str | None, download: bool) -> Data:
        root, is_default = resolve_data_dir(data_dir)
        return cls(root, download or is_default)


@dataclass(frozen=True)
class TrainRun:
    """One training stage: its configs, where it writes, and where it starts from."""

    tc: TrainConfig
    mc: ModelConfig
    run_dir: Path
    resume: bool = False
    init_from: Path | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> TrainRun:
        tc = recipe(
            args.arch, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer,
            seed=args.seed, workers=args.workers, device=args.device, augment=args.augment, patience=args.patience,
            limit_train=args.limit_train, ema_decay=args.ema_decay, amp=False if args.no_amp else None,
            augment_kind=args.augment_kind, label_smoothing=args.label_smoothing, val_size=args.val_size,
            teacher=tuple(args.teacher) if args.teacher else None, distill_alpha=args.distill_alpha,
            distill_temperature=args.distill_temperature, schedule=args.schedule, weight_decay=args.weight_decay,
            rendered_share=args.rendered_share,
        )  # fmt: skip
        if args.dry_run:
            tc = replace(tc, epochs=1, limit_train=1000)
        mc = ModelConfig(arch=args.arch)
        if args.channels:
            mc = replace(mc, channels=tuple(int(c) for c in args.channels.split(",")))
        return cls(tc, mc, args.run_dir or Path("runs") / args.arch, args.resume, args.init_from)

    def finetune(self, best: Path, stage: dict[str, Any]) -> TrainRun:
        """The architecture's second stage, from the first stage's best checkpoint."""
        return TrainRun(replace(self.tc, **stage), self.mc, best.parent / "finetune", init_from=best)


def cmd_data(data: Data) -> Path:
    raw = ensure_mnist(data.root, data.download)
    print(f"MNIST ready in {raw.resolve()} (4 files, sha256 checked)")
    return raw


def cmd_train(run: TrainRun, data: Data) -> Path:
    from training.checkpoint import load_checkpoint
    from training.train import train

    mc = run.mc
    if run.init_from and run.init_from.suffix == ".onnx":
        from training.warmstart import config_beside

        mc = config_beside(run.init_from)
    elif run.init_from:
        mc = ModelConfig.from_dict(load_checkpoint(run.init_from)["model_config"])
    best = train(run.tc, mc, data.root, run.run_dir, resume=run.resume, download=data.download, init_from=run.init_from)
    print(f"wrote {best} (best validation accuracy), metrics and training_curves.png to {run.run_dir}")
    return best


def cmd_export(
    checkpoint: Path,
    out: Path | None,
    data: Data,
    opset: int = DEFAULT_OPSET,
    temperature: bool = True,
    detector: Path | None = None,
    store: bool = True,
) -> Path:
    from training.export import export_checkpoint
    from training.registry import to_store

    out = out or checkpoint.parent / "export"
    meta = export_checkpoint(checkpoint, out, data.root, opset, temperature, detector)
    tag = to_store(out) if store else None
    cal = meta.get("calibration")
    calibrated = (
        (
            f", temperature {cal['temperature']:.3f}: test ECE {100 * cal['test_ece_before']:.2f}% -> "
            f"{100 * cal['test_ece']:.2f}%"
        )
        if cal
        else ""
    )
    print(
        f"wrote {out}/model.onnx ({meta['version']}, test accuracy {100 * meta['test_accuracy']:.2f}%, "
        f"parity {meta['parity_max_abs_diff']:.1e}{calibrated}) and metadata.json"
        + (f"; {tag} in BentoML's model store" if tag else "")
    )
    if "digit_detector" in meta:
        det = meta["digit_detector"]
        print(
            f"digit_score output: threshold {det['threshold']:.4f} keeps {100 * det['keeps']:g}% of validation digits"
        )
    return out


def cmd_train_detector(classifier: Path, run_dir: Path, data: Data, cfg: DetectorConfig) -> Path:
    from training.detector import train_detector

    return train_detector(classifier, data.root, run_dir, cfg)


def cmd_evaluate(model: Path, out: Path | None, data: Data, threads: int = 2) -> dict:
    from training.data import load_split
    from training.evaluate import evaluate_onnx, format_report

    if not model.is_file():
        raise FileNotFoundError(f"no ONNX model at {model}")
    out = out or model.parent / "eval"
    x, y = (t.numpy() for t in load_split(data.root, train=False))
    report = evaluate_onnx(model, x, y, out, threads=threads)
    print(format_report(report))
    print(f"wrote report.json, confusion_matrix.png and misclassified.png to {out}")
    return report


@dataclass(frozen=True)
class Guards:
    """What a promotion must clear, and whether it then serves the new version."""

    models_dir: Path
    floor: float = DEFAULT_FLOOR
    max_drop_pp: float = DEFAULT_MAX_DROP_PP
    force: bool = False
    serve: bool = True

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Guards:
        return cls(args.models_dir, args.floor, args.max_drop_pp, args.force, not args.no_serve)


def cmd_compare(checkpoints: list[Path], data: Data, json_path: Path | None) -> dict:
    import json

    from training.compare import compare, format_comparison

    result = compare(checkpoints, data.root)
    print(format_comparison(result))
    if json_path:
        json_path.write_text(json.dumps(result, indent=2))
        print(f"wrote {json_path}")
    return result


def cmd_promote(export_dir: Path, guards: Guards) -> str:
    from training.registry import promote, to_store

    version = promote(export_dir, guards.models_dir, guards.floor, guards.max_drop_pp, guards.force, guards.serve)
    tag = to_store(guards.models_dir / version)
    if guards.serve:
        print(
            f"serving {version} from {guards.models_dir}{f' and {tag} in the model store' if tag else ''} "
            "(rollback: mnist rollback); `bentoml build` packs it, nothing to edit"
        )
    else:
        print(f"added {version} to {guards.models_dir}; still serving {read_served(guards.models_dir).served}")
    return version


def cmd_rollback(models_dir: Path, version: str | None) -> None:
    from training.registry import rollback, to_store

    served = rollback(models_dir, version)
    to_store(models_dir / served)  # a clone from before the store: `bentoml build` finds it there too
    print(f"serving {served} from {models_dir}; `bentoml build` packs it")


def cmd_list(models_dir: Path) -> None:
    from training.registry import list_versions

    served = read_served(models_dir).served
    for m in list_versions(models_dir):
        mark = "*" if m.version == served else " "
        print(f"{mark} {m.version:28s} {100 * m.test_accuracy:.2f}%  {m.parameters or 0:>9,} params  {m.exported_at}")


def cmd_pipeline(run: TrainRun, data: Data, guards: Guards, finetune: bool, promote: bool) -> None:
    best = cmd_train(run, data)
    stage2 = FINETUNE.get(run.tc.arch)
    if stage2 and finetune:
        print(f"fine-tuning {best}: {stage2}")
        best = cmd_train(run.finetune(best, stage2), data)
    out = cmd_export(best, None, data, store=False)  # the store gets what is promoted
    cmd_evaluate(out / "model.onnx", None, data)
    if not promote:
        print(f"not promoted; export in {out}")
        return
    cmd_promote(out, guards)


def _data(args: argparse.Namespace) -> Data:
    """Where MNIST is, for the commands that read it."""
    return Data.from_args(args.data_dir, args.download)


def run_command(args: argparse.Namespace) -> None:
    """Turn the parsed arguments into plain values, once, and run the command."""
    match args.command:
        case "data":
            cmd_data(_data(args))
        case "train":
            cmd_train(TrainRun.from_args(args), _data(args))
        case "export":
            cmd_export(args.checkpoint, args.out, _data(args), args.opset, not args.no_temperature, args.detector)
        case "train-detector":
            cmd_train_detector(
                args.classifier, args.run_dir, _data(args), _config(args, DetectorConfig, DETECTOR_FLAGS)
            )
        case "train-head":
            from training.head_data import fit

            fit(args.classifier, _data(args).root, args.run_dir, _config(args, HeadConfig, HEAD_FLAGS))
        case "evaluate":
            cmd_evaluate(args.model, args.out, _data(args), args.threads)
        case "compare":
            cmd_compare(args.checkpoints, _data(args), args.json)
        case "promote":
            cmd_promote(args.export_dir, Guards.from_args(args))
        case "rollback":
            cmd_rollback(args.models_dir, args.version)
        case "list":
            cmd_list(args.models_dir)
        case "pipeline":
            cmd_pipeline(
                TrainRun.from_args(args),
                _data(args),
                Guards.from_args(args),
                finetune=not (args.no_finetune or args.dry_run),
                promote=not (args.no_promote or args.dry_run),
            )


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("onnxscript", "onnx_ir", "torch.onnx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    try:
        run_command(args)
    except (DataNotFoundError, CheckpointError, ExportError, PromotionError, FileNotFoundError, ValueError) as exc:
        print(f"mnist {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mnist {args.command}: interrupted; `--resume` continues from the last epoch", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
