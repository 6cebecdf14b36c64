"""Channel layouts of consumer EEG headsets, montages for files without positions, and
mapping a headset's channels onto the model's input by electrode positions.

A model trained on 128-channel data cannot be fed 14 Emotiv channels directly. Because
every channel here has a position on the scalp (standard 10-05 names, or positions read
from a montage file), the missing model channels are interpolated from the recorded
ones (spherical splines, through ``dreamdiffusion.data.transforms.map_channels_montage``).
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import mne
import numpy as np

from dreamdiffusion.core.errors import ConfigError, EEGReadError

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


def standard_montage_name() -> str:
    """MNE's densest standard 10-05 template (renamed 'colin27_1005' in recent MNE)."""
    builtin = mne.channels.get_builtin_montages()
    return "colin27_1005" if "colin27_1005" in builtin else "standard_1005"


MONTAGE_SUFFIXES = (".loc", ".locs", ".eloc", ".sfp", ".csd", ".elc", ".txt", ".elp", ".hpts", ".bvef", ".csv", ".tsv")


def resolve_montage(spec: str | os.PathLike | None) -> mne.channels.DigMontage | None:
    """A montage from a name MNE knows ('standard_1020', 'biosemi128', ...) or a positions file.

    ``None`` or ``"auto"`` gives ``None`` (keep the file's own positions, or use the
    standard 10-05 template where the file has none).
    """
    if spec is None or str(spec).strip().lower() in ("", "auto"):
        return None
    text = os.fspath(spec)
    path = Path(text)
    if path.suffix.lower() not in MONTAGE_SUFFIXES and not path.exists():
        try:  # also accepts names MNE still knows but no longer lists (standard_1020 in MNE 1.13)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                return mne.channels.make_standard_montage(text)
        except ValueError:
            pass
    if path.suffix.lower() in MONTAGE_SUFFIXES or path.exists():
        if not path.is_file():
            raise ConfigError("montage file not found (give a file with electrode positions or a standard "
                              "montage name such as standard_1020)", path)
        try:
            return mne.channels.read_custom_montage(path)
        except Exception as exc:  # MNE raises several types for a bad file
            raise ConfigError(f"cannot read electrode positions: {exc}", path) from exc
    raise ConfigError(
        f"unknown montage {text!r}: give a positions file ({', '.join(MONTAGE_SUFFIXES)}) or one of MNE's "
        f"standard montages (e.g. standard_1020, biosemi128)"
    )


def has_positions(info: mne.Info) -> bool:
    """True when every EEG channel has a finite, non-zero position."""
    picks = mne.pick_types(info, eeg=True, exclude=())
    if len(picks) == 0:
        return False
    locs = np.array([info["chs"][i]["loc"][:3] for i in picks])
    return bool(np.all(np.isfinite(locs)) and np.all(np.linalg.norm(locs, axis=1) > 0))


def apply_montage(raw: mne.io.BaseRaw, montage: str | os.PathLike | mne.channels.DigMontage | None,
                  source: str | os.PathLike | None = None) -> mne.io.BaseRaw:
    """Set electrode positions from ``montage`` (a standard name or a positions file), in place.

    ``None`` keeps what the file has (the reader already gives 10-05-named channels standard
    positions). EEG channels the montage does not know make an EEGReadError naming them.
    """
    mont = montage if isinstance(montage, mne.channels.DigMontage) else resolve_montage(montage)
    if mont is None:
        return raw
    eeg = [raw.ch_names[i] for i in mne.pick_types(raw.info, eeg=True, exclude=())]
    known = {n.lower() for n in mont.ch_names}
    unknown = [c for c in eeg if c.lower() not in known]
    if unknown:
        shown = ", ".join(unknown[:8]) + (" ..." if len(unknown) > 8 else "")
        raise EEGReadError(
            f"{len(unknown)} EEG channel(s) are not in the montage ({shown}): give a montage that names "
            f"every channel, or rename the channels to 10-05 names",
            source,
        )
    raw.set_montage(mont, match_case=False, on_missing="raise", verbose="error")
    return raw


def _unit_positions(montage: mne.channels.DigMontage) -> dict[str, np.ndarray]:
    """Lower-cased channel name -> direction from the head origin (unit vector); scale-free, so
    template heads and measured heads of different sizes compare."""
    out = {}
    for name, pos in montage.get_positions()["ch_pos"].items():
        pos = np.asarray(pos, dtype=float)
        norm = np.linalg.norm(pos)
        if np.all(np.isfinite(pos)) and norm > 0:
            out[name.lower()] = pos / norm
    return out


def snap_to_standard_names(raw: mne.io.BaseRaw, montage: str = "standard_1005") -> mne.io.BaseRaw:
    """Rename EEG channels that are not 10-05 names but have positions to the nearest free
    10-05 name of ``montage`` (a copy; ``raw`` itself when nothing needs renaming).

    The positional mapping onto the model's channels (``transforms.map_channels_montage``)
    places channels by name in a standard montage; this lets a cap with its own names
    (``E1``, ``A12``, ``EEG 001``) plus measured or ``--montage`` positions use it too.
    """
    template = _unit_positions(mne.channels.make_standard_montage(_template_name(montage)))
    eeg = [raw.ch_names[i] for i in mne.pick_types(raw.info, eeg=True, exclude=())]
    foreign = [c for c in eeg if c.lower() not in template]
    if not foreign:
        return raw
    measured = raw.get_montage()
    positions = _unit_positions(measured) if measured is not None else {}
    taken = {c.lower() for c in eeg if c.lower() in template}
    # T3/T4/T5/T6 are old names of T7/T8/P7/P8 at the same positions: offer only the modern ones.
    names = [n for n in template if n not in ("t3", "t4", "t5", "t6")]
    grid = np.array([template[n] for n in names])
    cased = {n.lower(): n for n in mne.channels.make_standard_montage(_template_name(montage)).ch_names}
    renames = {}
    for ch in foreign:
        if ch.lower() not in positions:
            continue  # no position: transforms leaves it out (and says so in the log)
        order = np.argsort(np.linalg.norm(grid - positions[ch.lower()], axis=1))
        for j in order:
            if names[j] not in taken:
                taken.add(names[j])
                renames[ch] = cased[names[j]]
                break
    if not renames:
        return raw
    logger.info("placing %d channel(s) at the nearest 10-05 positions: %s", len(renames),
                ", ".join(f"{a}->{b}" for a, b in list(renames.items())[:8]))
    out = raw.copy()
    out.rename_channels(renames, verbose="error")
    return out


def _template_name(montage: str) -> str:
    # MNE 1.13 deprecates 'standard_1005' in favour of 'colin27_1005' (same positions).
    return standard_montage_name() if montage == "standard_1005" else montage


def map_to_model(data: np.ndarray, ch_names: list[str], target: list[str] | tuple[str, ...],
                 montage: str = "standard_1005") -> np.ndarray:
    """Map ``data`` [C, T] recorded on ``ch_names`` onto the ``target`` channels by position.

    Delegates to ``transforms.map_channels_montage`` (the one place channel mapping lives),
    so the web app, the live stream and the benchmark all map channels the same way.
    """
    from dreamdiffusion.data.transforms import map_channels_montage

    return np.asarray(map_channels_montage(np.asarray(data), list(ch_names), list(target), montage))


def nearest_channels(wanted: list[str] | tuple[str, ...], available: list[str],
                     montage: str = "standard_1005") -> list[str]:
    """For each wanted 10-05 name, the ``available`` channel (named in ``montage``) at or nearest
    to its position; no channel is used twice.

    Lets a headset layout be simulated on a cap that lacks its exact positions (a 10-20 subset
    of a BioSemi 128 recording, for example).
    """
    template = _unit_positions(mne.channels.make_standard_montage(standard_montage_name()))
    cap = _unit_positions(mne.channels.make_standard_montage(_template_name(montage)))
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
