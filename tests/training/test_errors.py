"""Missing data and corrupt checkpoints give one clear message, never a traceback."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from training.checkpoint import CheckpointError, load_checkpoint
from training.cli import main
from training.data import RAW_FILES, DataNotFoundError, ensure_mnist, load_split

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


def _fake_download(source: Path, fail: Exception | None = None):
    """torchvision's MNIST.download, replaced: copy the files from `source` (or fail), no network."""

    def download(self) -> None:
        if fail is not None:
            raise fail
        raw = Path(self.raw_folder)
        raw.mkdir(parents=True, exist_ok=True)
        for name in RAW_FILES:
            shutil.copy(source / "MNIST" / "raw" / name, raw / name)

    return download


def test_data_command_downloads_into_the_default_folder(
    tmp_path: Path, mnist_data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from torchvision.datasets import MNIST

    monkeypatch.setattr(MNIST, "download", _fake_download(mnist_data_dir))
    monkeypatch.delenv("MNIST_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)  # ./data is the default, where downloads go
    assert main(["data"]) == 0
    assert "sha256 checked" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "data" / "MNIST" / "raw").iterdir()) == sorted(RAW_FILES)


def test_data_command_offline_says_what_to_do_in_one_line(
    tmp_path: Path, mnist_data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from torchvision.datasets import MNIST

    monkeypatch.setattr(MNIST, "download", _fake_download(mnist_data_dir, OSError("Network is unreachable")))
    assert main(["data", "--data-dir", str(tmp_path), "--download"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "MNIST_DATA_DIR" in err and "Network is unreachable" in err


def test_data_command_refuses_files_with_the_wrong_checksum(tmp_path: Path, mnist_data_dir: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    shutil.copytree(mnist_data_dir / "MNIST" / "raw", raw)
    with (raw / "t10k-labels-idx1-ubyte").open("r+b") as f:
        f.seek(100)
        f.write(b"\xff")
    with pytest.raises(DataNotFoundError, match="t10k-labels-idx1-ubyte do not match MNIST's sha256"):
        ensure_mnist(tmp_path, download=False)
    assert main(["data", "--data-dir", str(mnist_data_dir)]) == 0  # the real files pass
