"""Knowledge distillation (Hinton et al. 2015): a student learns an ensemble teacher's softened answers."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from training.checkpoint import model_from_checkpoint


class Ensemble(nn.Module):
    """Members' logits averaged in log-probability space: (N, 10) log of the mean softmax at T=1."""

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probs = torch.stack([F.softmax(m(x).float(), dim=1) for m in self.members]).mean(0)  # (N, 10)
        return probs.clamp_min(1e-12).log()


def load_teacher(paths: list[str] | tuple[str, ...], device: torch.device) -> Ensemble:
    """The ensemble of the given best.pt checkpoints, frozen and in eval mode."""
    members = [model_from_checkpoint(Path(p))[0] for p in paths]
    teacher = Ensemble(members).to(device).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


@torch.no_grad()
def soft_targets(teacher: nn.Module, x: torch.Tensor, temperature: float) -> torch.Tensor:
    """The mean of the members' probabilities at temperature T: (N, 10), rows sum to 1."""
    if isinstance(teacher, Ensemble):
        return torch.stack([F.softmax(m(x).float() / temperature, dim=1) for m in teacher.members]).mean(0)
    return F.softmax(teacher(x).float() / temperature, dim=1)


def distillation_loss(
    student_logits: torch.Tensor,
    targets: torch.Tensor,
    labels: torch.Tensor,
    temperature: float,
    alpha: float,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * cross-entropy on the hard labels.

    The T^2 keeps the soft term's gradients on the same scale as the hard term's (Hinton et al.).
    """
    log_p = F.log_softmax(student_logits.float() / temperature, dim=1)
    soft = F.kl_div(log_p, targets, reduction="batchmean") * temperature**2
    hard = F.cross_entropy(student_logits.float(), labels, label_smoothing=label_smoothing)
    return alpha * soft + (1 - alpha) * hard
