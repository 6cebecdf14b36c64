"""The class context: the EEG's class posterior read by a discriminant, times the base's own context of each class.

Why: the paper's context reaches the UNet through the token mapper (and, in the demo, through the CLIP head's
prediction), both fitted to regress; naming the class is a discriminant's job. On the built-in benchmark a
shrinkage LDA on time-binned EEG names the digit better than anything the recipes' images showed, and the
fine-tuned UNet drew the wrong digit from contexts whose nearest class context was right. :class:`ClassReader`
puts the discriminant inside the conditioner: ``softmax(W x + b) @ contexts`` with ``x`` the EEG window's time-binned
means (the baselines' features), added to the mapped context (``EEGConditioner(class_contexts=K)``). Its weights are
fitted in closed form (``finetune --class-context``, :mod:`~dreamdiffusion.training.class_context`) and held.
"""

from __future__ import annotations

import torch
from torch import nn

from dreamdiffusion.data.transforms import binned_means


class ClassReader(nn.Module):
    """EEG window ``[B, C, T]`` -> ``sum_k p(k | eeg) * contexts[k]``, ``[B, L, D]``."""

    def __init__(self, n_chans: int, n_times: int, n_classes: int, n_bins: int, context_shape: tuple[int, int]):
        super().__init__()
        if not 1 <= n_bins <= n_times or n_classes < 2:
            raise ValueError(f"a class reader needs 1 <= bins <= {n_times} samples and 2 or more classes, "
                             f"got {n_bins} bins and {n_classes} classes")
        self.n_bins = int(n_bins)
        self.discriminant = nn.Linear(n_chans * n_bins, n_classes)
        self.register_buffer("contexts", torch.zeros(n_classes, *context_shape))

    def posterior(self, eeg: torch.Tensor) -> torch.Tensor:
        """``p(k | eeg)`` ``[B, K]`` from the window's time-binned means (the features the closed-form fit read)."""
        features = binned_means(eeg.to(self.discriminant.weight.dtype), self.n_bins)
        return torch.softmax(self.discriminant(features).float(), -1)

    def forward(self, eeg: torch.Tensor) -> torch.Tensor:
        probs = self.posterior(eeg).to(self.contexts.dtype)
        return torch.einsum("bk,kld->bld", probs, self.contexts)

    @torch.no_grad()
    def load_fit(self, weight, bias, contexts) -> None:
        """Set the discriminant ``[K, F]``, ``[K]`` and the class contexts ``[K, L, D]`` (row k: class k)."""
        for dst, src in ((self.discriminant.weight, weight), (self.discriminant.bias, bias), (self.contexts, contexts)):
            src = torch.as_tensor(src)
            if tuple(src.shape) != tuple(dst.shape):
                raise ValueError(f"class reader: expected shape {tuple(dst.shape)}, got {tuple(src.shape)}")
            dst.copy_(src.to(dst.dtype))


__all__ = ["ClassReader"]
