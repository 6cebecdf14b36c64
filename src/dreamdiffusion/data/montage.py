"""Electrode positions: standard montage names, montages from names or files, and channel names.

One home for what the readers, the transforms and the app need to know about montages:

- :func:`builtin_montage_name`: the name under which this MNE has a standard montage (MNE 1.13
  renamed ``standard_10xx`` to ``colin27_10xx``; the old names go in 1.14). The one rename table is
  :data:`MONTAGE_RENAMES`.
- :func:`make_montage`: a standard montage by name (``ConfigError`` when unknown).
- :func:`resolve_montage`: what a user typed (``--montage``: a standard name or a positions file) as a
  ``DigMontage``, or ``None`` for "keep the file's own positions".
- :func:`apply_montage`, :func:`has_positions`, :func:`snap_to_standard_names`: positions on a
  recording, and channels with foreign names (``E1``, ``A12``) renamed to the nearest 10-05 name.
- :func:`montage_positions`, :func:`montage_directions`, :func:`default_target_channels`: positions (and their
  directions from the head's centre) by lower-cased name, and the model's default channel layout for the montage
  mapping.
"""

from __future__ import annotations

import logging
import os
import warnings
from functools import lru_cache
from pathlib import Path

import mne
import numpy as np

from dreamdiffusion.core.errors import ConfigError, EEGReadError

logger = logging.getLogger(__name__)

DEFAULT_MONTAGE = "standard_1005"  # MNE's densest 10-05 template: the model's channel names live here
# Old standard montage name prefix -> the prefix this MNE may use instead (same positions).
MONTAGE_RENAMES = {"standard_": "colin27_"}
# Old 10-20 names of positions that have modern 10-05 names; snapping offers only the modern ones.
OLD_CHANNEL_NAMES = {"T3": "T7", "T4": "T8", "T5": "P7", "T6": "P8"}
MONTAGE_SUFFIXES = (".loc", ".locs", ".eloc", ".sfp", ".csd", ".elc", ".txt", ".elp", ".hpts", ".bvef", ".csv", ".tsv")


def builtin_montage_name(name: str) -> str:
    """``name`` as this MNE lists it: ``standard_1005`` -> ``colin27_1005`` where MNE has renamed
    it, unchanged otherwise (names MNE does not know are left for :func:`make_montage` to refuse)."""
    builtin = set(mne.channels.get_builtin_montages())
    if name in builtin:
        return name
    for old, new in MONTAGE_RENAMES.items():
        if name.startswith(old) and new + name[len(old):] in builtin:
            return new + name[len(old):]
    return name


def standard_montage_name() -> str:
    """MNE's densest standard 10-05 template under this MNE's name for it."""
    return builtin_montage_name(DEFAULT_MONTAGE)


def make_montage(name: str) -> mne.channels.DigMontage:
    """The standard montage ``name`` (old or new MNE name); :class:`ConfigError` when unknown."""
    try:
        with warnings.catch_warnings():  # names MNE still knows but has deprecated
            warnings.simplefilter("ignore", FutureWarning)
            return mne.channels.make_standard_montage(builtin_montage_name(name))
    except ValueError as exc:
        raise ConfigError(f"unknown standard montage {name!r}: {exc}") from None


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
        try:
            return make_montage(text)
        except ConfigError:
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


def has_any_position(info: mne.Info) -> bool:
    """True when at least one channel has a finite position and not every position is zero."""
    locs = np.array([ch["loc"][:3] for ch in info["chs"]])
    return bool(np.isfinite(locs).all(axis=1).any() and np.abs(locs).sum() > 0)


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


def unit_positions(montage: mne.channels.DigMontage) -> dict[str, np.ndarray]:
    """Lower-cased channel name -> direction from the head origin (unit vector); scale-free, so
    template heads and measured heads of different sizes compare."""
    out = {}
    for name, pos in montage.get_positions()["ch_pos"].items():
        pos = np.asarray(pos, dtype=float)
        norm = np.linalg.norm(pos)
        if np.all(np.isfinite(pos)) and norm > 0:
            out[name.lower()] = pos / norm
    return out


# Unit-direction distance (~29 degrees) beyond which a measured channel is not at its name's place in a template:
# templates and digitised caps differ by well under half of it, two different caps' same names by far more.
_ELSEWHERE = 0.5


@lru_cache(maxsize=256)
def _say_placing(message: str) -> None:
    """Log a renaming by position once per process: the live stream makes a new recording of its buffer for every
    window, and the app maps a file again at each request."""
    logger.info(message)


def snap_to_standard_names(raw: mne.io.BaseRaw, montage: str = DEFAULT_MONTAGE) -> mne.io.BaseRaw:
    """Rename EEG channels that are not names of ``montage`` (10-05 unless the model's cap is another, such as the
    built-in benchmark's BioSemi-128) but have positions to its nearest free name (a copy; ``raw`` itself when
    nothing needs renaming).

    The positional mapping onto the model's channels (``array_transforms.map_channels_montage``)
    places channels by name in a standard montage; this lets a cap with its own names
    (``E1``, ``A12``, ``EEG 001``) plus measured or ``--montage`` positions use it too.
    """
    standard = make_montage(montage)
    template = unit_positions(standard)
    eeg = [raw.ch_names[i] for i in mne.pick_types(raw.info, eeg=True, exclude=())]
    foreign = [c for c in eeg if c.lower() not in template]
    measured = raw.get_montage()
    positions = unit_positions(measured) if measured is not None else {}
    if not positions and not foreign:
        return raw  # nothing to rename, nothing measured to check the names against
    template = _template_in_frame_of(standard, template, positions)
    # A name of the cap measured far from where the cap has it is another cap's channel of the same name
    # (10-20's A1 is the left ear, BioSemi's the vertex): its position decides, as for a foreign name.
    foreign += [c for c in eeg if c.lower() in template and c.lower() in positions
                and np.linalg.norm(positions[c.lower()] - template[c.lower()]) > _ELSEWHERE]
    if not foreign:
        return raw
    taken = {c.lower() for c in eeg if c.lower() in template and c not in foreign}
    old = {n.lower() for n in OLD_CHANNEL_NAMES}
    names = [n for n in template if n not in old]
    grid = np.array([template[n] for n in names])
    cased = {n.lower(): n for n in standard.ch_names}
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
    message = (f"placing {len(renames)} channel(s) at the nearest free positions of {montage}: "
               + ", ".join(f"{a}->{b}" for a, b in list(renames.items())[:8]))
    _say_placing(message)
    out = raw.copy()
    out.rename_channels(renames, verbose="error")
    return out


def _template_in_frame_of(standard: mne.channels.DigMontage, template: dict[str, np.ndarray],
                          positions: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``template`` (unit directions of ``standard`` in its native MRI frame) or the same in the head
    frame, whichever the measured ``positions`` fit better.

    Directions depend on the origin. Positions set from a montage with fiducials are moved by MNE
    into the head frame (origin between the ears, centimetres from the template's); positions from
    a file without fiducials are taken as they are. Which one a recording holds is not recorded
    (MNE adds estimated fiducials either way), so the closer fit decides.
    """
    if not positions:
        return template
    in_head = standard.copy()
    in_head.apply_trans(mne.channels.compute_native_head_t(standard))  # in place
    head = unit_positions(in_head)

    def misfit(tpl: dict[str, np.ndarray]) -> float:
        grid = np.array(list(tpl.values()))
        return float(sum(np.linalg.norm(grid - p, axis=1).min() for p in positions.values()))

    return head if misfit(head) < misfit(template) else template


def montage_positions(montage: str) -> dict[str, np.ndarray]:
    """Lower-cased channel name -> position (metres, head frame) in the standard ``montage``."""
    return {k.lower(): v for k, v in _positions_cased(montage).items()}


@lru_cache(maxsize=8)
def montage_directions(montage: str) -> dict[str, np.ndarray]:
    """Lower-cased channel name -> unit direction from the centre of the standard ``montage``'s own sphere.

    The spherical spline reads nothing else, and two templates compare this way. The centre is the sphere fitted
    to all of the template's positions: MNE's templates sit up to ~2 cm off their frame's origin (10-05's is 1.6 cm
    behind it, BioSemi's at it), and a fit to a few hundred positions is stable where one to a recording's few
    sensors is not."""
    pos = _positions_cased(montage)
    names = [k for k, v in pos.items() if np.all(np.isfinite(v))]
    xyz = np.array([pos[k] for k in names], dtype=float)
    # |x|^2 = 2 x.c + (r^2 - |c|^2): linear least squares in (c, r^2 - |c|^2)
    solution = np.linalg.lstsq(np.c_[2 * xyz, np.ones(len(xyz))], (xyz ** 2).sum(axis=1), rcond=None)[0]
    rel = xyz - solution[:3]
    rel /= np.linalg.norm(rel, axis=1, keepdims=True)
    return {k.lower(): v for k, v in zip(names, rel)}


@lru_cache(maxsize=8)
def _positions_cased(montage: str) -> dict[str, np.ndarray]:
    return make_montage(montage).get_positions()["ch_pos"]


@lru_cache(maxsize=16)
def _default_targets(n: int, montage: str) -> tuple[str, ...]:
    pos = _positions_cased(montage)
    names = list(pos)
    xyz = np.array([pos[k] for k in names])
    # Keep the scalp cap: positions no lower than the T7/T8 ring minus a little (drops the
    # neck/cheek positions some 10-05 layouts carry).
    centre = xyz.mean(0)
    rel = xyz - centre
    ring = np.median([rel[names.index(c)][2] for c in ("T7", "T8") if c in names]) if "T7" in names else rel[:, 2].min()
    keep = rel[:, 2] >= ring - 0.02
    names = [n_ for n_, k in zip(names, keep) if k]
    rel = rel[keep]
    if n > len(names):
        raise ConfigError(f"montage {montage!r} has only {len(names)} scalp positions, cannot choose {n}")
    # Farthest-point sampling from Cz: deterministic and spreads n positions evenly over the cap.
    start = names.index("Cz") if "Cz" in names else 0
    chosen = [start]
    d = np.linalg.norm(rel - rel[start], axis=1)
    while len(chosen) < n:
        j = int(np.argmax(d))
        chosen.append(j)
        d = np.minimum(d, np.linalg.norm(rel - rel[j], axis=1))
    # Report them in the montage's own order (front to back), which reads better than pick order.
    return tuple(names[j] for j in sorted(chosen))


def default_target_channels(n: int, montage: str = DEFAULT_MONTAGE) -> list[str]:
    """``n`` channel names of ``montage`` spread evenly over the scalp (farthest-point sampling
    from Cz), used as the model's channel layout by the montage mapping."""
    return list(_default_targets(int(n), montage))


__all__ = ["DEFAULT_MONTAGE", "MONTAGE_RENAMES", "OLD_CHANNEL_NAMES", "MONTAGE_SUFFIXES", "builtin_montage_name",
           "standard_montage_name", "make_montage", "resolve_montage", "has_positions", "has_any_position",
           "apply_montage", "unit_positions", "snap_to_standard_names", "montage_positions", "montage_directions",
           "default_target_channels"]
