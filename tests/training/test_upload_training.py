"""The upload training pieces on tiny inputs: upload-like augmentation, temperature scaling,
distillation from an ensemble, and warm starts from an exported graph."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F

from training.augment import AugmentConfig, blur, elastic_offsets, low_resolution, thickness, upload_like
from training.calibrate import fit_temperature, reliability
from training.checkpoint import load_checkpoint
from training.distill import Ensemble, distillation_loss, load_teacher, soft_targets
from training.export import export_checkpoint
from training.models import ModelConfig
from training.train import train
from training.warmstart import model_from_onnx

pytestmark = pytest.mark.training


def _digits(n: int = 16) -> torch.Tensor:
    """(n, 1, 28, 28) in [0, 1]: a bar and a ring, enough to see what each step does."""
    x = torch.zeros(n, 1, 28, 28)
    x[: n // 2, :, 6:22, 12:16] = 1.0
    yy, xx = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    ring = ((yy - 14) ** 2 + (xx - 14) ** 2).sqrt()
    x[n // 2 :, 0] = ((ring > 5) & (ring < 8)).float()
    return x


class TestAugment:
    def test_shape_range_and_seeded(self) -> None:
        x = _digits()
        a = upload_like(x.clone(), torch.Generator().manual_seed(0))
        b = upload_like(x.clone(), torch.Generator().manual_seed(0))
        assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1
        assert torch.equal(a, b)
        assert not torch.equal(a, upload_like(x.clone(), torch.Generator().manual_seed(1)))

    def test_every_step_off_leaves_only_the_affine(self) -> None:
        off = AugmentConfig(p_elastic=0, p_thickness=0, p_blur=0, p_lowres=0, p_noise=0)
        x = _digits()
        out = upload_like(x.clone(), torch.Generator().manual_seed(0), off)
        assert (out - x).abs().sum() > 0  # the affine still moved the digits
        assert abs(out.sum() / x.sum() - 1) < 0.25  # but kept about the same amount of ink

    def test_thickness_thickens_and_thins(self) -> None:
        x = _digits(2)
        thick = thickness(x, torch.tensor([1.0, 1.0]))
        thin = thickness(x, torch.tensor([-1.0, -1.0]))
        assert (thick.sum() > 1.3 * x.sum()) and (thin.sum() < 0.8 * x.sum())

    def test_blur_low_resolution_and_elastic_stay_small(self) -> None:
        x = _digits(4)
        blurred = blur(x, torch.tensor([0.5, 1.0, 1.5, 2.0]))
        assert torch.allclose(blurred.sum((1, 2, 3)), x.sum((1, 2, 3)), rtol=0.02)  # blur keeps the ink
        assert (blurred[3] > 0).sum() > (blurred[0] > 0).sum()
        assert low_resolution(x, 10).shape == x.shape
        offsets = elastic_offsets(4, 28, alpha=1.5, sigma=4.0, generator=torch.Generator().manual_seed(0))
        # alpha pixels at the coarse grid's points; bicubic overshoots between them by well under a third
        assert offsets.shape == (4, 28, 28, 2) and offsets.abs().max() * 28 / 2 <= 1.5 * 1.3


class TestCalibration:
    def test_fit_temperature_recovers_a_known_temperature(self) -> None:
        g = torch.Generator().manual_seed(0)
        true = torch.randn(4000, 10, generator=g) * 3
        labels = torch.multinomial(F.softmax(true, 1), 1, generator=g).squeeze(1)
        assert fit_temperature(true * 2.5, labels) == pytest.approx(2.5, rel=0.1)  # overconfident by 2.5x

    def test_ece_of_calibrated_and_overconfident_answers(self) -> None:
        rng = np.random.default_rng(0)
        conf = rng.uniform(0.5, 1.0, 20000)
        right = rng.uniform(size=conf.size) < conf  # right as often as claimed
        probs = np.zeros((conf.size, 10))
        probs[:, 0] = conf
        probs[:, 1:] = ((1 - conf) / 9)[:, None]
        labels = np.where(right, 0, 1)
        assert reliability(probs, labels)["ece"] < 0.02
        labels_bad = np.where(rng.uniform(size=conf.size) < conf - 0.2, 0, 1)  # 20 pp less often
        assert reliability(probs, labels_bad)["ece"] == pytest.approx(0.2, abs=0.03)

    def test_export_folds_the_temperature_into_the_graph(self, smoke_run: dict) -> None:
        meta = json.loads((smoke_run["export"] / "metadata.json").read_text())
        cal = meta["calibration"]
        assert meta["temperature"] == cal["temperature"] > 0 and "validation" in cal["fitted_on"]
        assert cal["val_nll_after"] <= cal["val_nll_before"] + 1e-6
        session = ort.InferenceSession(str(smoke_run["export"] / "model.onnx"))
        x = np.random.default_rng(0).random((8, 1, 28, 28), dtype=np.float32)
        logits, probs = session.run(["logits", "probabilities"], {"pixels": x})
        np.testing.assert_allclose(F.softmax(torch.from_numpy(logits), 1).numpy(), probs, atol=1e-6)


class TestDistillation:
    def test_loss_is_cross_entropy_at_alpha_0_and_zero_kl_on_the_teacher(self) -> None:
        g = torch.Generator().manual_seed(0)
        logits, labels = torch.randn(32, 10, generator=g), torch.randint(0, 10, (32,), generator=g)
        targets = F.softmax(logits / 4.0, 1)
        assert distillation_loss(logits, targets, labels, 4.0, 0.0) == pytest.approx(
            F.cross_entropy(logits, labels).item(), rel=1e-5
        )
        assert distillation_loss(logits, targets, labels, 4.0, 1.0).item() == pytest.approx(0.0, abs=1e-5)

    def test_ensemble_averages_its_members(self, smoke_run: dict) -> None:
        teacher = load_teacher([str(smoke_run["best"])] * 2, torch.device("cpu"))
        assert isinstance(teacher, Ensemble) and not any(p.requires_grad for p in teacher.parameters())
        x = _digits(4)
        one = F.softmax(teacher.members[0](x) / 3.0, 1)
        torch.testing.assert_close(soft_targets(teacher, x, 3.0), one)  # two equal members: the member
        assert torch.allclose(teacher(x).exp().sum(1), torch.ones(4))

    def test_a_distilled_run_records_its_teacher(self, smoke_run: dict, mnist_data_dir: Path, tmp_path: Path) -> None:
        tc = replace(
            smoke_run["train_config"],
            limit_train=256,
            teacher=(str(smoke_run["best"]),),
            augment_kind="upload",
            label_smoothing=0.0,
        )
        best = train(tc, ModelConfig(arch="mnist-cnn"), mnist_data_dir, tmp_path)
        state = load_checkpoint(best)
        assert state["train_config"]["teacher"] == (str(smoke_run["best"]),)
        assert state["train_config"]["augment_kind"] == "upload"


def test_warm_start_from_an_export_matches_the_graph(smoke_run: dict) -> None:
    """The unfolded nn.Module computes the graph's raw logits (the graph's are divided by T)."""
    onnx_path = smoke_run["export"] / "model.onnx"
    t = json.loads((smoke_run["export"] / "metadata.json").read_text())["temperature"]
    x = _digits(8)
    model = model_from_onnx(onnx_path, x)
    (graph_logits,) = ort.InferenceSession(str(onnx_path)).run(["logits"], {"pixels": x.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(model.eval()(x).numpy() / t, graph_logits, atol=1e-4)
        model.train()
        model[20].p = 0.0  # dropout off: training-mode BatchNorm on the same batch gives the same answer
        np.testing.assert_allclose(model(x).numpy() / t, graph_logits, atol=1e-3)


def test_an_export_can_be_re_exported_calibrated(smoke_run: dict, mnist_data_dir: Path, tmp_path: Path) -> None:
    """`mnist export models/<v>/model.onnx`: same answers, a fresh temperature, the source named."""
    source = json.loads((smoke_run["export"] / "metadata.json").read_text())
    meta = export_checkpoint(smoke_run["export"] / "model.onnx", tmp_path, mnist_data_dir)
    assert meta["re_exported_from"] == source["version"]
    assert meta["test_accuracy"] == pytest.approx(source["test_accuracy"], abs=2e-4)
    assert meta["temperature"] > 0 and meta["train_config"]["seed"] == source["train_config"]["seed"]
