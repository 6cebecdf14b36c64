"""Best-of-N sampling: draw several candidates per image, keep those CLIP finds closest to the EEG's prediction.

A sample from a diffusion model is one draw from everything its conditioning allows; what the EEG decodes beyond
the class is a weak direction in the conditioning, and the sampler's noise decides much of the rest (stroke width,
slant). MindEye (Scotti et al. 2023) draws several images per brain recording and keeps the one whose CLIP
embedding is closest to the embedding predicted from the recording. This module does that for both conditioning
routes: the score of a candidate is the cosine between its CLIP image embedding and the EEG's predicted CLIP image
embedding (:meth:`DreamDiffusionPipeline.encode_eeg`: a tokens pipeline's CLIP head, an ip-adapter pipeline's
aligned prediction). Only the EEG and the model are used, never a ground-truth image, so the selection is part of
the generator, not of the evaluation.

The cost is ``candidates`` times the sampling plus one CLIP pass per candidate. :func:`dreamdiffusion.generation.
draw_images` calls :meth:`ClipRanker.select`; ``generate``, ``evaluate`` and the demo expose it as ``--candidates``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from PIL import Image

from dreamdiffusion.core.errors import ConfigError
from dreamdiffusion.models import hub


class ClipRanker:
    """Ranks candidate images by CLIP cosine to the EEG's predicted CLIP image embedding.

    ``clip``: a CLIP spec (``builtin-tiny``, a hub id or a folder) or an already loaded
    :class:`~dreamdiffusion.models.hub.ClipModel`; it must be the CLIP the EEG model was aligned against, so that
    the predicted embedding and the candidates' embeddings live in one space.
    """

    def __init__(self, clip, device: str | torch.device = "cpu"):
        self.clip = hub.load_clip(clip) if isinstance(clip, str) else clip
        self.clip.model.eval().to(device)
        self.source = getattr(self.clip, "source", None)

    @torch.no_grad()
    def scores(self, pipe, eegs: torch.Tensor, rows: Sequence[Sequence[Image.Image]]) -> torch.Tensor:
        """``[len(rows), n]``: cosine of each row's candidates to the predicted embedding of its EEG."""
        n = len(rows[0])
        target = F.normalize(pipe.encode_eeg(eegs)[1].float().cpu(), dim=-1)  # [B, P]
        flat = [im for row in rows for im in row]
        embeds = hub.clip_image_embeds(flat, self.clip.model, self.clip.processor, normalize=True, batch_size=64)
        if embeds.shape[-1] != target.shape[-1]:
            raise ConfigError(f"--candidates: the model predicts {target.shape[-1]}-wide CLIP image embeddings, the "
                              f"ranking CLIP {self.source} gives {embeds.shape[-1]}-wide ones: pass the CLIP the model "
                              "was trained against (--clip)")
        return (embeds.cpu().reshape(len(rows), n, -1) * target[:, None]).sum(-1)

    def select(self, pipe, eegs: torch.Tensor, rows: Sequence[Sequence[Image.Image]],
               keep: int) -> list[list[Image.Image]]:
        """The ``keep`` best candidates of each row, best first."""
        order = self.scores(pipe, eegs, rows).argsort(dim=-1, descending=True)[:, :keep]
        return [[row[j] for j in idx.tolist()] for row, idx in zip(rows, order)]


__all__ = ["ClipRanker"]
