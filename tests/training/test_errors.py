"""Missing data and corrupt checkpoints give one clear message, never a traceback."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from training.checkpoint import CheckpointError, load_checkpoint
from training.cli import main
from training.data import DataNotFoundError, load_split

pytestmark = pytest.mark.training


def test_missing_data_folder_names_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError, match=str(tmp_path / "nowhere")) as err:
        load_split(tmp_path / "nowhere", train=True)
    assert "--data-dir" in str(err.value) and "MNIST_DATA_DIR" in str(err.value)


def test_incomplete_data_folder(tmp_path: Path, mnist_data_dir: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    shutil.copy(mnist_data_dir / "MNIST" / "raw" / "t10k-labels-idx1-ubyte", raw)
    with pytest.raises(DataNotFoundError, match="incomplete"):
        load_split(tmp_path, train=False)


def test_truncated_data_file(tmp_path: Path, mnist_data_dir: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    shutil.copytree(mnist_data_dir / "MNIST" / "raw", raw)
    data = (raw / "t10k-images-idx3-ubyte").read_bytes()
    (raw / "t10k-images-idx3-ubyte").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataNotFoundError):
        load_split(tmp_path, train=False)


def test_cli_reports_missing_data_without_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", "--arch", "seed-small", "--data-dir", str(tmp_path / "nowhere"), "--run-dir",
                 str(tmp_path / "run")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert "mnist train: error:" in err and "nowhere" in err and "Traceback" not in err


def test_corrupt_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "best.pt"
    bad.write_bytes(b"this is not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(bad)
    assert main(["export", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "corrupt" in err and "Traceback" not in err


def test_missing_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
