"""Channel selection as the EEG-image field does it: a list of 10-20 names or a named set.

UBP and NeuroBridge keep the 17 parieto-occipital channels of THINGS-EEG2's 63 (visual responses are
strongest there). ``--channels ubp17`` or ``--channels O1,Oz,O2`` resolves against the data's channel
names (case-insensitive). Data whose channels have no 10-20 names (a BioSemi-128 cap, as in the built-in
benchmark: A1..D32) but a known standard montage get, for each wanted name, the nearest unused channel by
position in MNE's montages.
"""

from __future__ import annotations

import numpy as np

from dreamdiffusion.core.errors import ConfigError
from dreamdiffusion.data.montage import montage_positions

CHANNEL_SETS: dict[str, tuple[str, ...]] = {
    # UBP (configs/eeg/ubp*.yaml) and NeuroBridge: parietal, parieto-occipital and occipital rows.
    "ubp17": ("P7", "P5", "P3", "P1", "Pz", "P2", "P4", "P6", "P8", "PO7", "PO3", "POz", "PO4", "PO8",
              "O1", "Oz", "O2"),
    "occipital": ("O1", "Oz", "O2"),
}


def parse_channel_spec(spec: str) -> list[str]:
    """``"ubp17"`` -> its names; ``"O1, Oz,O2"`` -> ``["O1", "Oz", "O2"]``."""
    spec = (spec or "").strip()
    if spec.lower() in CHANNEL_SETS:
        return list(CHANNEL_SETS[spec.lower()])
    names = [s.strip() for s in spec.split(",") if s.strip()]
    if not names:
        raise ConfigError(f"--channels is empty; give names (O1,Oz,O2) or a set: {', '.join(CHANNEL_SETS)}")
    if len(set(n.lower() for n in names)) != len(names):
        raise ConfigError(f"--channels names a channel twice: {spec}")
    return names


def resolve_channels(spec: str, ch_names: list[str], montage: str | None = None) -> tuple[list[int], list[str]]:
    """Indices into ``ch_names`` of the channels ``spec`` asks for, and what each resolved to.

    Exact (case-insensitive) names first; names the data lacks are matched by position when ``montage``
    (the data's standard montage, e.g. ``biosemi128``) is given, else they are an error.
    """
    wanted = parse_channel_spec(spec)
    lower = {n.lower(): i for i, n in enumerate(ch_names)}
    index: list[int | None] = [lower.get(w.lower()) for w in wanted]
    missing = [w for w, i in zip(wanted, index) if i is None]
    if missing and montage is None:
        raise ConfigError(f"channels not in the data: {', '.join(missing[:8])} (the data has "
                          f"{', '.join(ch_names[:8])}{', ...' if len(ch_names) > 8 else ''})")
    if missing:
        index = _nearest_by_position(wanted, index, ch_names, montage)
    return [int(i) for i in index], [ch_names[int(i)] for i in index]


def _nearest_by_position(wanted: list[str], index: list, ch_names: list[str], montage: str) -> list[int]:
    target_pos = montage_positions("standard_1005")
    data_pos = montage_positions(montage)
    have = [i for i, n in enumerate(ch_names) if n.lower() in data_pos]
    if not have:
        raise ConfigError(f"none of the data's channels is in montage {montage!r}: cannot match channels by position")
    # Compare directions from each montage's own centre: montages differ in head size and origin.
    data_centre = np.mean(list(data_pos.values()), axis=0)
    target_centre = np.mean(list(target_pos.values()), axis=0)
    xyz = np.array([data_pos[ch_names[i].lower()] for i in have]) - data_centre
    xyz = xyz / np.linalg.norm(xyz, axis=1, keepdims=True)
    used = {i for i in index if i is not None}
    out = []
    for name, i in zip(wanted, index):
        if i is None:
            if name.lower() not in target_pos:
                raise ConfigError(f"channel {name!r} is neither in the data nor a 10-05 position")
            p = target_pos[name.lower()] - target_centre
            p = p / np.linalg.norm(p)
            order = np.argsort(np.linalg.norm(xyz - p, axis=1))
            i = next(have[j] for j in order if have[j] not in used)
            used.add(i)
        out.append(i)
    return out


__all__ = ["CHANNEL_SETS", "parse_channel_spec", "resolve_channels"]
