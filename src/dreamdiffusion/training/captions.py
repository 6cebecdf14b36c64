"""Caption contexts: the base's own cross-attention context for each paired image's caption.

Why: the paper's token mapper starts from random weights and must learn, through the diffusion loss alone, to put
out contexts the pretrained UNet understands. With few pairs and few steps it does so at some seeds and not at
others, although the encoder already tells the images apart (its linear probe after Stage B is within a few points
of the raw EEG's). The base already has the right contexts: the ones it was trained on, its text encoder's output
for a caption. ``finetune --caption-weight W`` pulls the mapped context toward the paired image's caption context
during the CLIP warm-up (cheap: no UNet), so the joint phase starts from a mapper that speaks the UNet's language
and spends its steps on what the caption does not say.

The caption is the image's label: a class-conditional base (``builtin-tiny``) looks it up among its class
embeddings; a Stable Diffusion base encodes ``"a photo of a {label}"`` with its own text encoder. ``--null-init
base`` starts the null context (condition dropout, guidance) from the base's own "no prompt" context likewise.
"""

from __future__ import annotations

import torch

from dreamdiffusion.core.errors import ConfigError, DataError
from dreamdiffusion.models import hub

CAPTION_TEMPLATE = "a photo of a {}"


class CaptionTargets:
    """Each label's caption context ``[L, D]`` of ``base``; :meth:`__call__` stacks a batch's.

    A class-conditional base's contexts are all known up front; a text encoder's are encoded as new labels come
    (each once).
    """

    def __init__(self, base: str, source=None):
        self.where, self.source = hub.resolve(base, "base"), source
        self.contexts: dict[str, torch.Tensor] = {}
        self.classes: list[str] | None = None
        self._text_encoder = None  # loaded with the first labels a text-to-image base needs, then kept
        lookup = hub.class_conditioning(base)
        if lookup is not None:
            embeds, _null, self.classes = lookup
            self.contexts = {name: e.float() for name, e in zip(self.classes, embeds)}
        # the loss is divided by the contexts' variance, so weight 1 sits on the CLIP loss's scale whatever the base
        self.scale: float | None = None

    def __call__(self, items: list, device=None) -> torch.Tensor:
        labels = [it.get("label") for it in items]
        if any(lab is None for lab in labels):
            raise DataError("--caption-weight needs labelled pairs (an item has no label)", self.source)
        names = [str(lab) for lab in labels]
        missing = sorted(set(names) - set(self.contexts))
        if missing and self.classes is not None:
            raise DataError(f"labels {missing[:5]} are not among the base's classes {self.classes[:10]}", self.source)
        if missing:
            self._text_encoder = self._text_encoder or hub.load_text_encoder(self.where)
            prompts = [CAPTION_TEMPLATE.format(n) for n in missing]
            self.contexts.update(zip(missing, hub.prompt_contexts(self.where, prompts, self._text_encoder).float()))
        if self.scale is None:
            self.scale = float(torch.stack(list(self.contexts.values())).var().clamp_min(1e-8))
        return torch.stack([self.contexts[n] for n in names]).to(device)

    def loss(self, cond: torch.Tensor, items: list) -> torch.Tensor:
        """Mean squared error of the mapped contexts to the items' caption contexts, over their variance."""
        target = self(items, cond.device)
        if cond.shape[1:] != target.shape[1:]:
            raise ConfigError(f"the mapper puts out contexts of shape {tuple(cond.shape[1:])} but the base's caption "
                              f"contexts are {tuple(target.shape[1:])}")
        return torch.mean((cond.float() - target) ** 2) / self.scale


def base_null_context(base: str) -> torch.Tensor:
    """The base's "no prompt" context ``[L, D]`` (``--null-init base``)."""
    return hub.empty_prompt_context(hub.resolve(base, "base")).float()


__all__ = ["CaptionTargets", "base_null_context", "CAPTION_TEMPLATE"]
