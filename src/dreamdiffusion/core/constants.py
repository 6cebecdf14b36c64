"""Numbers and names that more than one layer needs, each defined once."""

from __future__ import annotations

# The paper's EEG window: 440 ms (EEGCVPR40's samples 20:460 at 1 kHz) stretched to 512 samples,
# so the model sees EEG at an effective 512 / 0.44 s = 1163.6 Hz. Every recording is resampled
# to this rate by default, so a window spans the same time whatever the device recorded at.
PAPER_WINDOW_S = 0.44
PAPER_N_TIMES = 512
PAPER_N_CHANS = 128
PAPER_SFREQ = PAPER_N_TIMES / PAPER_WINDOW_S

# The name of the tiny built-in Stable Diffusion + CLIP (``--base builtin-tiny``, ``--clip builtin-tiny``).
BUILTIN_NAME = "builtin-tiny"

__all__ = ["PAPER_WINDOW_S", "PAPER_N_TIMES", "PAPER_N_CHANS", "PAPER_SFREQ", "BUILTIN_NAME"]
