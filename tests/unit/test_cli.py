"""`mnist`'s parser: flags that set a config's fields set exactly those, with the config's defaults."""

from __future__ import annotations

import pytest

from training.cli import DETECTOR_FLAGS, HEAD_FLAGS, ConfigFlag, _config, build_parser
from training.detector import DetectorConfig
from training.head import HeadConfig

CASES = [
    ("train-detector", DetectorConfig, DETECTOR_FLAGS),
    ("train-head", HeadConfig, HEAD_FLAGS),
]


@pytest.mark.parametrize(("command", "cls", "flags"), CASES)
def test_no_flags_give_the_configs_defaults(command: str, cls: type, flags: tuple[ConfigFlag, ...]) -> None:
    args = build_parser().parse_args([command, "model.onnx"])
    assert _config(args, cls, flags) == cls()


@pytest.mark.parametrize(("command", "cls", "flags"), CASES)
def test_each_flag_sets_its_field(command: str, cls: type, flags: tuple[ConfigFlag, ...]) -> None:
    for f in flags:
        default = getattr(cls(), f.field)
        value = type(default)(default + 1)  # a value of the field's type that is not the default
        args = build_parser().parse_args([command, "model.onnx", f.flag, str(value)])
        cfg = _config(args, cls, flags)
        assert getattr(cfg, f.field) == value and getattr(cfg, f.field) != default
        assert cfg == cls(**{f.field: value})  # and nothing else moved


def test_defaults_are_in_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train-detector", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert f"(default: {DetectorConfig().negatives_per_kind:,})" in out and "(default: runs/detector)" in out
