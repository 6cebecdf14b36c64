"""The array steps of the recording -> window path: stretch in time, map channels, cut windows, normalise,
centre each subject.

They take and return plain arrays (``[C, T]`` or windows ``[n, C, T]``), with no MNE Raw and no
:class:`~dreamdiffusion.data.transforms.InputSpec`: :mod:`dreamdiffusion.data.transforms` composes them into
the one recording -> window path, and datasets whose files already hold epochs (THINGS-EEG2, EEGCVPR40) call
them directly, so an epoch and a window cut from a recording are shaped the same way.
"""

from __future__ import annotations

import logging

import mne
import numpy as np

from dreamdiffusion.core.errors import ConfigError, DataError
from dreamdiffusion.data.montage import DEFAULT_MONTAGE, default_target_channels, montage_directions

logger = logging.getLogger(__name__)

NORMALIZATIONS = ("zscore", "none")

def stretch_time(x: np.ndarray, n_out: int) -> np.ndarray:
    """Linear interpolation along the last axis to ``n_out`` samples, end points aligned.

    Same as ``np.interp(np.linspace(0, 1, n_out), np.linspace(0, 1, n_in), row)`` per row (and
    scipy's ``interp1d``), which is how the reference code stretches 440 samples to 512.
    """
    x = np.asarray(x)
    n_in = x.shape[-1]
    if n_in < 1 or n_out < 1:
        raise DataError(f"cannot stretch {n_in} samples to {n_out}")
    if n_in == 1:
        return np.repeat(x, n_out, axis=-1).astype(np.result_type(x, np.float32), copy=False)
    pos = np.linspace(0.0, n_in - 1, n_out)
    i0 = np.clip(np.floor(pos).astype(np.int64), 0, n_in - 2)
    w = (pos - i0).astype(np.result_type(x, np.float32))
    # One gather per side instead of a Python loop of np.interp over channels.
    return x[..., i0] * (1 - w) + x[..., i0 + 1] * w


def map_channels_repeat(data: np.ndarray, n_target: int) -> np.ndarray:
    """The paper's mapping: tile the channels until ``n_target`` (topping up with the first
    ones), or keep the first ``n_target`` if there are more. ``[C, T] -> [n_target, T]``."""
    data = np.asarray(data)
    if data.ndim != 2 or data.shape[0] < 1:
        raise DataError(f"expected data [channels, samples] with at least one channel, got shape {data.shape}")
    idx = np.arange(n_target) % data.shape[0]
    return data[idx]


def map_channels_montage(data: np.ndarray, ch_names: list[str], target: list[str] | int,
                         montage: str = DEFAULT_MONTAGE, sfreq: float = 1000.0) -> np.ndarray:
    """Project ``data [C, T]`` recorded at ``ch_names`` onto the ``target`` layout.

    Uses MNE's spherical-spline interpolation (``Raw.interpolate_to``, Perrin et al. 1989) with
    positions from MNE's standard ``montage``: each target channel becomes a smooth weighted sum
    of all source channels, exact where a target sits on a source electrode. Chosen over nearest
    neighbour because it keeps the scalp field continuous when the source layout is sparse (a
    14-channel headset onto 128). Source channels without a position are dropped (logged);
    fewer than 3 positioned channels cannot define a field, so the caller should fall back to
    ``map_channels_repeat``. ``target`` is a list of names in ``montage`` or a count.

    The recording's channels are placed by their names in ``montage`` or, where more of them are 10-05 names, in
    the 10-05 template: a headset's ``O1``, ``Pz`` on a model whose channels are another cap's (the built-in
    benchmark's BioSemi-128 ``A1`` .. ``D32``). One layout per recording, because names collide (10-20 ``A1`` is the
    left ear, BioSemi's ``A1`` the vertex). The spline works on directions from the head's centre, so positions
    of the two templates are compared as unit vectors.
    """
    data = np.asarray(data, dtype=np.float64)
    if data.ndim != 2 or data.shape[0] != len(ch_names):
        raise DataError(f"data shape {data.shape} does not match {len(ch_names)} channel names")
    targets = default_target_channels(target, montage) if isinstance(target, (int, np.integer)) else list(target)
    pos = montage_directions(montage)
    missing_t = [t for t in targets if t.lower() not in pos]
    if missing_t:
        raise ConfigError(f"target channels not in montage {montage!r}: {missing_t[:5]}")
    src_montage = source_montage(ch_names, montage)
    src_pos = montage_directions(src_montage)
    keep = [i for i, c in enumerate(ch_names) if str(c).lower() in src_pos]
    if len(keep) < 3:
        where = repr(montage) if montage == DEFAULT_MONTAGE else f"{montage!r} or {DEFAULT_MONTAGE!r}"
        raise DataError(f"{len(keep)} of {len(ch_names)} channels have a position in {where} (names like "
                        f"{list(ch_names)[:4]}), and a scalp field needs at least 3; use channel_mapping='repeat'")
    dropped = [ch_names[i] for i in range(len(ch_names)) if i not in set(keep)]
    if dropped:
        logger.info("montage mapping: %d channel(s) without a position in %s are left out: %s",
                    len(dropped), src_montage, dropped[:8])
    src_names = [str(ch_names[i]) for i in keep]
    # If every target already is a source channel, the spline is the identity: skip it.
    src_index = {c.lower(): i for i, c in enumerate(src_names)}
    if src_montage == montage and all(t.lower() in src_index for t in targets):
        return data[keep][[src_index[t.lower()] for t in targets]]
    info = mne.create_info(src_names, sfreq, "eeg")
    raw = mne.io.RawArray(data[keep], info, verbose="error")
    raw.set_montage(mne.channels.make_dig_montage(
        {c: src_pos[c.lower()] for c in src_names}, coord_frame="head"), verbose="error")
    dst = mne.channels.make_dig_montage({t: pos[t.lower()] for t in targets}, coord_frame="head")
    # origin=(0,0,0): the positions are unit directions from each template's own fitted centre (montage_directions);
    # MNE's 'auto' would fit a sphere to the few source sensors, which is unstable.
    with mne.use_log_level("error"):
        out = raw.interpolate_to(dst, origin=(0.0, 0.0, 0.0), method="spline")
    out_names = out.ch_names
    return out.get_data()[[out_names.index(t) for t in targets]]


def source_montage(ch_names: list[str], montage: str) -> str:
    """Where a recording's channel names are looked up: the model's ``montage``, or the 10-05 template when more of
    them are 10-05 names (ties stay with the model's)."""
    if montage == DEFAULT_MONTAGE:
        return montage
    names = [str(c).lower() for c in ch_names]
    own, template = montage_directions(montage), montage_directions(DEFAULT_MONTAGE)
    return DEFAULT_MONTAGE if sum(c in template for c in names) > sum(c in own for c in names) else montage


def make_windows(data: np.ndarray, n_times: int, stride: int | None = None) -> np.ndarray:
    """Cut ``data [C, T]`` into windows ``[n, C, n_times]`` every ``stride`` samples (a copy).

    A recording shorter than one window gives ``n = 0``; callers decide whether that is an error.
    """
    data = np.asarray(data)
    if data.ndim != 2:
        raise DataError(f"expected data [channels, samples], got shape {data.shape}")
    stride = int(stride or n_times)
    if stride < 1 or n_times < 1:
        raise DataError(f"n_times and stride must be positive, got {n_times}, {stride}")
    c, t = data.shape
    if t < n_times:
        return np.zeros((0, c, n_times), dtype=np.float32)
    view = np.lib.stride_tricks.sliding_window_view(data, n_times, axis=1)[:, ::stride]  # [C, n, T]
    return np.ascontiguousarray(view.transpose(1, 0, 2), dtype=np.float32)


def normalize_windows(windows: np.ndarray, how: str = "zscore", eps: float = 1e-8) -> np.ndarray:
    """Per-window, per-channel z-score over time (``how="zscore"``) or nothing (``"none"``).

    A flat channel (std below ``eps`` times the window's largest std) stays zero instead of
    blowing up to noise.
    """
    if how == "none":
        return np.asarray(windows, dtype=np.float32)
    if how != "zscore":
        raise ConfigError(f"normalize must be one of {NORMALIZATIONS}, got {how!r}")
    # float32 throughout: pairwise summation over <= a few thousand samples is accurate enough,
    # and it halves the memory traffic of the corpus builder.
    w = np.asarray(windows, dtype=np.float32)
    mean = w.mean(axis=-1, keepdims=True)
    out = w - mean
    with np.errstate(over="ignore"):
        std = np.sqrt(np.mean(np.square(out), axis=-1, keepdims=True))
    if not np.isfinite(std).all():  # amplitudes beyond 1e19 overflow float32 squares: redo in float64
        w64 = np.asarray(windows, dtype=np.float64)
        out64 = w64 - w64.mean(axis=-1, keepdims=True)
        std = np.sqrt(np.mean(np.square(out64), axis=-1, keepdims=True)).astype(np.float32)
        if not np.isfinite(std).all():
            raise DataError("window values are too large to normalise (check the recording's units)")
    floor = np.maximum(std.max(axis=-2, keepdims=True) * eps, np.finfo(np.float32).tiny)
    out /= np.where(std > floor, std, np.inf)
    return out


def subject_means(windows: np.ndarray, subjects, rows=None, chunk: int = 256) -> dict:
    """Each subject's mean window ``{subject: float32 [C, T]}`` over the windows ``rows`` (e.g. the train trials).

    ``windows`` may be a memory map ``[n, C, T]``: it is read ``chunk`` windows at a time.
    """
    subjects = np.asarray(subjects)
    if len(subjects) != len(windows):
        raise ValueError(f"{len(subjects)} subject ids for {len(windows)} windows")
    rows = np.arange(len(windows)) if rows is None else np.sort(np.asarray(rows, dtype=np.int64))
    sums: dict = {}
    counts: dict = {}
    for start in range(0, len(rows), chunk):
        idx = rows[start:start + chunk]
        block = np.asarray(windows[idx], dtype=np.float64)
        for k in np.unique(subjects[idx]):
            pick = subjects[idx] == k
            sums[k] = sums.get(k, 0.0) + block[pick].sum(axis=0)
            counts[k] = counts.get(k, 0) + int(pick.sum())
    return {_plain(k): (sums[k] / counts[k]).astype(np.float32) for k in sums}


def center_by_subject(windows: np.ndarray, subjects, means: dict, chunk: int = 256) -> np.ndarray:
    """``windows [n, C, T]`` minus their subject's mean window (:func:`subject_means`), in place (pass a copy to
    keep the input; a writable memory map is centred on disk, ``chunk`` windows at a time).

    Why: a linear read-out pooled over subjects also has to absorb each subject's own average response (its gain
    and latency on the shared evoked components); removing it, with means from the train trials only, leaves the
    part that varies with the stimulus. A subject without a mean is a :class:`DataError`.
    """
    subjects = np.asarray(subjects)
    if len(subjects) != len(windows):
        raise ValueError(f"{len(subjects)} subject ids for {len(windows)} windows")
    present, which = np.unique(subjects, return_inverse=True)  # which[i]: row of window i's subject in `present`
    keys = [_plain(k) for k in present]
    missing = sorted(set(keys) - set(means))
    if missing:
        raise DataError(f"no mean window for subject(s) {missing} (they have no train trials)")
    stack = np.stack([means[k] for k in keys])  # [S, C, T], row i = keys[i]
    for start in range(0, len(windows), chunk):
        sl = slice(start, start + chunk)
        windows[sl] = windows[sl] - stack[which[sl]]
    return windows


def _plain(key):
    """A numpy scalar subject id as the Python value it holds (so ``{0: ...}`` and ``np.int64(0)`` meet)."""
    return key.item() if isinstance(key, np.generic) else key
