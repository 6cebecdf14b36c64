"""Channel layouts of consumer EEG headsets, montages for files without positions, and
mapping a headset's channels onto the model's input by electrode positions.

A model trained on 128-channel data cannot be fed 14 Emotiv channels directly. Because
every channel here has a position on the scalp (standard 10-05 names, or positions read
from a montage file), the missing model channels are interpolated from the recorded
ones (spherical splines, through ``dreamdiffusion.data.array_transforms.map_channels_montage``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from dreamdiffusion.core.errors import ConfigError
from dreamdiffusion.data.array_transforms import map_channels_montage

# Montage helpers live in data.montage; re-exported here, where the app and its users import them.
from dreamdiffusion.data.montage import (  # noqa: F401
    MONTAGE_SUFFIXES,
    apply_montage,
    has_positions,
    make_montage,
    montage_directions,
    resolve_montage,
    snap_to_standard_names,
    standard_montage_name,
    unit_positions,
)
from dreamdiffusion.data.montage import unit_positions as _unit_positions  # noqa: F401 (old private name)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Layout:
    """A headset's channel names (10-05 system) in the order the device streams them."""

    name: str
    description: str
    ch_names: tuple[str, ...]

    @property
    def n_chans(self) -> int:
        return len(self.ch_names)


# Channel orders follow each maker's documentation; all names exist in MNE's 10-05 montage.
LAYOUTS: dict[str, Layout] = {
    layout.name: layout
    for layout in (
        Layout(
            "emotiv-epoc",
            "Emotiv EPOC / EPOC+ / EPOC X, 14 channels",
            ("AF3", "F7", "F3", "FC5", "T7", "P7", "O1", "O2", "P8", "T8", "FC6", "F4", "F8", "AF4"),
        ),
        Layout("emotiv-insight", "Emotiv Insight, 5 channels", ("AF3", "T7", "Pz", "T8", "AF4")),
        Layout("muse", "Interaxon Muse / Muse 2 / Muse S, 4 channels", ("TP9", "AF7", "AF8", "TP10")),
        Layout(
            "openbci-cyton",
            "OpenBCI Cyton, 8 channels (default electrode cap placement)",
            ("Fp1", "Fp2", "C3", "C4", "P7", "P8", "O1", "O2"),
        ),
        Layout(
            "openbci-cyton-daisy",
            "OpenBCI Cyton + Daisy, 16 channels (default electrode cap placement)",
            ("Fp1", "Fp2", "C3", "C4", "P7", "P8", "O1", "O2", "F7", "F8", "F3", "F4", "T7", "T8", "P3", "P4"),
        ),
        Layout(
            "10-20-8",
            "8-channel 10-20 subset",
            ("F3", "F4", "C3", "C4", "P3", "P4", "O1", "O2"),
        ),
        Layout(
            "10-20-16",
            "16-channel 10-20 subset",
            ("Fp1", "Fp2", "F7", "F3", "F4", "F8", "T7", "C3", "C4", "T8", "P7", "P3", "P4", "P8", "O1", "O2"),
        ),
        Layout(
            "10-20-19",
            "the classic 19-channel 10-20 clinical set",
            ("Fp1", "Fp2", "F7", "F3", "Fz", "F4", "F8", "T7", "C3", "Cz", "C4", "T8", "P7", "P3", "Pz", "P4",
             "P8", "O1", "O2"),
        ),
        Layout(
            "10-20-32",
            "32-channel 10-20 subset (BioSemi / Emotiv Flex 32 style)",
            ("Fp1", "AF3", "F7", "F3", "FC1", "FC5", "T7", "C3", "CP1", "CP5", "P7", "P3", "Pz", "PO3", "O1",
             "Oz", "O2", "PO4", "P4", "P8", "CP6", "CP2", "C4", "T8", "FC6", "FC2", "F4", "F8", "AF4", "Fp2",
             "Fz", "Cz"),
        ),
    )
}


def get_layout(name: str) -> Layout:
    """Return the layout called ``name`` (case-insensitive); ConfigError listing the known ones."""
    layout = LAYOUTS.get(name.strip().lower())
    if layout is None:
        raise ConfigError(f"unknown headset layout {name!r} (known: {', '.join(sorted(LAYOUTS))})")
    return layout


def detect_layout(ch_names: list[str] | tuple[str, ...]) -> Layout | None:
    """The known layout with exactly these channels (any order, case-insensitive), if any."""
    wanted = {c.strip().lower() for c in ch_names}
    for layout in LAYOUTS.values():
        if {c.lower() for c in layout.ch_names} == wanted:
            return layout
    return None


def map_to_model(data: np.ndarray, ch_names: list[str], target: list[str] | tuple[str, ...],
                 montage: str = "standard_1005") -> np.ndarray:
    """Map ``data`` [C, T] recorded on ``ch_names`` onto the ``target`` channels by position.

    Delegates to ``array_transforms.map_channels_montage`` (the one place channel mapping lives),
    so the web app, the live stream and the benchmark all map channels the same way.
    """
    return np.asarray(map_channels_montage(np.asarray(data), list(ch_names), list(target), montage))


def nearest_channels(wanted: list[str] | tuple[str, ...], available: list[str],
                     montage: str = "standard_1005") -> list[str]:
    """For each wanted 10-05 name, the ``available`` channel (named in ``montage``) at or nearest
    to its position; no channel is used twice.

    Lets a headset layout be simulated on a cap that lacks its exact positions (a 10-20 subset
    of a BioSemi 128 recording, for example).
    """
    # directions as the channel mapping compares them (each template from its own centre), so that the channel
    # chosen for an electrode is the one the mapping puts that electrode on
    template = montage_directions(standard_montage_name())
    cap = montage_directions(montage)
    missing = [c for c in wanted if c.lower() not in template] + [c for c in available if c.lower() not in cap]
    if missing:
        raise ConfigError(f"channel(s) {', '.join(missing[:8])} have no position in the montage")
    avail = np.array([cap[c.lower()] for c in available])
    chosen: list[str] = []
    for name in wanted:
        dist = np.linalg.norm(avail - template[name.lower()], axis=1)
        for i in np.argsort(dist, kind="stable"):
            if available[i] not in chosen:
                chosen.append(available[i])
                break
    return chosen


def simulate_headset(data: np.ndarray, ch_names: list[str], layout: Layout | list[str],
                     montage: str = "standard_1005") -> np.ndarray:
    """What the model sees through a smaller headset: keep only the layout's channels of a full
    recording ``data [C, T]`` on ``ch_names`` (nearest available position for each), then map
    them back onto all of ``ch_names`` by position."""
    names = list(layout.ch_names if isinstance(layout, Layout) else layout)
    keep = nearest_channels(names, list(ch_names), montage)
    index = [list(ch_names).index(c) for c in keep]
    return map_to_model(np.asarray(data)[index], keep, list(ch_names), montage)
