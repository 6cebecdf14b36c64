"""From a recording to the model's input: channels, band, rate, windows, normalisation.

The model sees fixed windows of ``n_chans x n_times`` samples (the paper: 128 x 512, a 440 ms
window stretched to 512 samples, i.e. an effective rate of 512 / 0.44 s = 1163.6 Hz). Every
recording is resampled to that one rate (``InputSpec.sfreq``) so a window always spans the same
time, whatever the device recorded at: the reference code skipped this and mixed rates.

All signal processing is MNE's (``Raw.filter``, ``Raw.notch_filter``, ``Raw.resample``,
``Raw.interpolate_to``); this module only chooses the parameters and composes the array steps of
:mod:`dreamdiffusion.data.array_transforms` (channel mapping, z-scoring) around them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import mne
import numpy as np

from dreamdiffusion.core.config import check_number, dataclass_from_dict
from dreamdiffusion.core.constants import PAPER_N_CHANS, PAPER_N_TIMES, PAPER_SFREQ, PAPER_WINDOW_S  # noqa: F401
from dreamdiffusion.core.errors import ConfigError, DataError, DreamDiffusionError
from dreamdiffusion.core.files import atomic_write_text
from dreamdiffusion.data.array_transforms import (
    NORMALIZATIONS,
    map_channels_montage,
    map_channels_repeat,
    normalize_windows,
    source_montage,
)
from dreamdiffusion.data.montage import (  # noqa: F401 (re-exported)
    DEFAULT_MONTAGE,
    default_target_channels,
    make_montage,
    montage_positions,
    snap_to_standard_names,
)
from dreamdiffusion.data.preflight import ENV_MAX_EEG_MB, max_eeg_bytes

logger = logging.getLogger(__name__)

CHANNEL_MAPPINGS = ("repeat", "montage")
# Beyond these a value is a typo, not a model; a frequency (a rate, a filter edge) below 1 mHz is one too.
_MAX_INT = {"n_chans": 4096, "n_times": 10**7, "window_stride": 10**7}
_FREQ_RANGE = (1e-3, 1e6)  # Hz
# Channel types we treat as scalp EEG when picking (EDF files often label everything "eeg").
_EEG_TYPES = ("eeg",)


@dataclass
class InputSpec:
    """What the model expects, and how a recording is turned into it.

    ``window_stride`` is in samples at ``sfreq``; ``None`` means non-overlapping windows.
    ``target_channels`` (montage mapping only) names the model's channels in ``montage``;
    ``None`` takes ``default_target_channels(n_chans)``.
    """

    n_chans: int = PAPER_N_CHANS
    n_times: int = PAPER_N_TIMES
    sfreq: float = PAPER_SFREQ
    l_freq: float | None = 5.0
    h_freq: float | None = 95.0
    notch: float | None = None
    channel_mapping: str = "repeat"
    normalize: str = "zscore"
    window_stride: int | None = None
    montage: str = DEFAULT_MONTAGE
    target_channels: list[str] | None = field(default=None)

    def __post_init__(self) -> None:
        self.n_chans = check_number(self.n_chans, "n_chans", 1, _MAX_INT["n_chans"], integer=True)
        self.n_times = check_number(self.n_times, "n_times", 1, _MAX_INT["n_times"], integer=True)
        self.sfreq = float(check_number(self.sfreq, "sfreq (Hz)", *_FREQ_RANGE))
        for name in ("l_freq", "h_freq", "notch"):  # None: no such filter
            v = getattr(self, name)
            setattr(self, name, None if v is None else float(check_number(v, f"{name} (Hz)", *_FREQ_RANGE)))
        if self.channel_mapping not in CHANNEL_MAPPINGS:
            raise ConfigError(f"channel_mapping must be one of {CHANNEL_MAPPINGS}, got {self.channel_mapping!r}")
        if self.normalize not in NORMALIZATIONS:
            raise ConfigError(f"normalize must be one of {NORMALIZATIONS}, got {self.normalize!r}")
        if self.l_freq is not None and self.h_freq is not None and self.l_freq >= self.h_freq:
            raise ConfigError(f"l_freq ({self.l_freq}) must be below h_freq ({self.h_freq})")
        if self.window_stride is not None:
            self.window_stride = check_number(self.window_stride, "window_stride", 1, _MAX_INT["window_stride"],
                                              integer=True)
        if not isinstance(self.montage, str):
            raise ConfigError(f"montage must be a standard montage name, got {self.montage!r}")
        if self.target_channels is not None:
            if isinstance(self.target_channels, str) or not hasattr(self.target_channels, "__iter__"):
                raise ConfigError("target_channels must be a list of channel names")
            self.target_channels = [str(c) for c in self.target_channels]
            if len(self.target_channels) != self.n_chans:
                raise ConfigError(f"target_channels has {len(self.target_channels)} names but n_chans is {self.n_chans}")

    @property
    def stride(self) -> int:
        return self.window_stride or self.n_times

    @property
    def window_s(self) -> float:
        return self.n_times / self.sfreq

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "InputSpec":
        return dataclass_from_dict(cls, d, "InputSpec fields")

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=1)
        if path is not None:
            atomic_write_text(path, text)
        return text

    @classmethod
    def from_json(cls, text_or_path: str | os.PathLike) -> "InputSpec":
        s = os.fspath(text_or_path)
        if not s.lstrip().startswith("{"):
            try:
                s = Path(s).read_text()
            except OSError as exc:
                raise ConfigError(f"cannot read input spec: {exc}", text_or_path) from None
        try:
            return cls.from_dict(json.loads(s))
        except ValueError as exc:
            raise ConfigError(f"input spec is not valid JSON: {exc}") from None


def preprocessing_record(dataset, name: str) -> dict:
    """The ``preprocessing.json`` of a model trained on ``dataset``: the dataset's :class:`InputSpec` (how a recording
    becomes its input), where it has one, and the dataset's name. ``finetune`` and ``align`` write it; pipelines built
    on an aligned encoder copy it."""
    spec = getattr(dataset, "spec", None)
    return {**(spec.to_dict() if isinstance(spec, InputSpec) else {}), "dataset": name}


# ---------------------------------------------------------------------------------------------
# Whole recordings


def binned_means(x: np.ndarray, n_bins: int) -> np.ndarray:
    """``x [N, C, T]`` averaged in ``n_bins`` equal time bins per channel: ``[N, C * n_bins]``, channel-major.

    The features of the usual linear ERP decoder (the ridge baselines, the linear probe of an encoder's tokens).
    The last ``T % n_bins`` samples are left out, so that every bin averages as many samples.
    """
    n, c, t = x.shape
    if not 1 <= n_bins <= t:
        raise ValueError(f"cannot average {t} samples in {n_bins} bins")
    return x[:, :, : t - t % n_bins].reshape(n, c, n_bins, -1).mean(-1).reshape(n, -1)


def pick_eeg(raw: mne.io.BaseRaw) -> mne.io.BaseRaw:
    """A copy of ``raw`` with only its EEG channels (bad ones dropped), data loaded."""
    picks = _good_eeg(raw)
    if not picks:
        raise DataError(f"no good EEG channels (channel types present: {sorted(set(raw.get_channel_types()))})",
                        _source(raw))
    out = raw.copy().pick(picks)
    if not out.preload:
        out.load_data(verbose="error")
    return out


def _good_eeg(raw: mne.io.BaseRaw) -> list[int]:
    """Indices of the EEG channels not marked bad: what every recording path reads."""
    return [i for i, t in enumerate(raw.get_channel_types()) if t in _EEG_TYPES and raw.ch_names[i] not in raw.info["bads"]]


def _source(raw: mne.io.BaseRaw) -> str | None:
    fn = raw.filenames[0] if getattr(raw, "filenames", None) else None
    return os.fspath(fn) if fn else None


_NYQUIST_LOGGED: set = set()  # say it once per rate, not once per file of a large corpus


def _band(raw: mne.io.BaseRaw, spec: InputSpec) -> tuple[float | None, float | None]:
    """The band-pass edges usable on this recording: h_freq at or above the recording's Nyquist
    frequency is dropped (the recording holds nothing up there; resampling anti-aliases the
    rest), which is logged because it changes the effective band."""
    nyq = raw.info["sfreq"] / 2.0
    l_freq, h_freq = spec.l_freq, spec.h_freq
    if h_freq is not None and h_freq >= nyq * 0.99:
        log = logger.info if (h_freq, nyq) not in _NYQUIST_LOGGED else logger.debug
        _NYQUIST_LOGGED.add((h_freq, nyq))
        log("%s: h_freq %.1f Hz is at/above the Nyquist frequency %.1f Hz of its %.1f Hz rate; "
                    "low-pass skipped", _source(raw) or "recording", h_freq, nyq, raw.info["sfreq"])
        h_freq = None
    if l_freq is not None and l_freq >= nyq * 0.9:
        raise DataError(f"sampling rate {raw.info['sfreq']:g} Hz is too low for a {l_freq:g} Hz high-pass "
                        "(lower --l-freq)", _source(raw))
    return l_freq, h_freq


def prepare_raw(raw: mne.io.BaseRaw, spec: InputSpec) -> tuple[np.ndarray, list[str]]:
    """The per-channel part of ``standardize_raw``: EEG picked, band-passed (MNE FIR, zero
    phase), notch-filtered if asked, resampled to ``spec.sfreq``. Returns ``(data [C, N] in
    microvolts, channel names)`` before channel mapping, so long recordings can be mapped and
    windowed chunk by chunk (``iter_windows``)."""
    raw = pick_eeg(raw)
    sfreq = raw.info["sfreq"]
    if raw.n_times < 2:
        raise DataError("recording has fewer than 2 samples", _source(raw))
    # Resampling up (a 1 Hz recording to 2 kHz) multiplies the samples: the result is held to the same
    # limit as a file's declared size (data/preflight.py), checked before MNE allocates it.
    n_res = int(math.ceil(raw.n_times * spec.sfreq / sfreq))
    need = len(raw.ch_names) * n_res * 8 * 3  # the resampled array plus MNE's working copies
    if need > max_eeg_bytes():
        raise DataError(f"resampling {raw.n_times} samples at {sfreq:g} Hz to {spec.sfreq:g} Hz gives {n_res} samples "
                        f"per channel ({need / 2**20:,.0f} MB to compute), over the limit of "
                        f"{max_eeg_bytes() / 2**20:,.0f} MB ({ENV_MAX_EEG_MB})", _source(raw))
    l_freq, h_freq = _band(raw, spec)
    if l_freq is not None or h_freq is not None:
        # A recording shorter than the filter gets a shorter (MNE-chosen) filter and a warning;
        # keep MNE quiet here and let the caller check the window count.
        raw.filter(l_freq, h_freq, verbose="error")
    if spec.notch is not None:
        freqs = np.arange(spec.notch, sfreq / 2 * 0.99, spec.notch)
        if len(freqs):
            raw.notch_filter(freqs, verbose="error")
    if abs(sfreq - spec.sfreq) > 1e-6 * spec.sfreq:
        raw.resample(spec.sfreq, verbose="error")
    return raw.get_data() * 1e6, list(raw.ch_names)  # volts -> microvolts


def channel_map(ch_names: list[str], spec: InputSpec, source: str | None = None) -> np.ndarray:
    """How the recording's channels become the model's: a matrix ``[spec.n_chans, C]`` so that
    ``mapped = M @ data``. Repeat mapping is a 0/1 selection matrix; montage mapping is MNE's
    spherical-spline interpolation applied to the identity (the spline is linear in the data, so
    its matrix is its response to unit inputs) and falls back to repeat, with a warning, when
    fewer than 3 channels have standard positions."""
    return channel_plan(ch_names, spec, source)[0]


def channel_plan(ch_names: list[str], spec: InputSpec, source: str | None = None) -> tuple[np.ndarray, dict]:
    """:func:`channel_map`'s matrix and a record of what it did (a manifest's ``channels``): ``used`` (``montage``
    or ``repeat``), ``requested``, the channel counts, for montage the model's cap and where the recording's names
    were looked up (``names_placed_in``), and a fall-back's ``fallback`` reason."""
    c = len(ch_names)
    record = {"requested": spec.channel_mapping, "recorded_channels": c, "model_channels": spec.n_chans}
    if spec.channel_mapping == "montage":
        targets = spec.target_channels or spec.n_chans
        try:
            m = map_channels_montage(np.eye(c), list(ch_names), targets, spec.montage, spec.sfreq)
            return m, {**record, "used": "montage", "model_montage": spec.montage,
                       "names_placed_in": source_montage(list(ch_names), spec.montage)}
        except DataError as exc:
            reason = exc.message.split("; use ")[0]  # drop the hint meant for direct callers
            _warn_repeat_fallback(os.fspath(source) if source is not None else "recording", reason)
            record["fallback"] = reason
    elif c != spec.n_chans and (c, spec.n_chans) not in _TILING_LOGGED:
        # Asked for, but a 14-channel headset tiled onto a 128-channel model puts its channels wherever file order
        # says: say so once per channel count (a corpus of many such files would say it for each).
        _TILING_LOGGED.add((c, spec.n_chans))
        how = "tiled" if c < spec.n_chans else f"cut to the first {spec.n_chans}"
        logger.warning("%s: %d EEG channels %s in file order for the model's %d (channel_mapping='repeat', the "
                       "paper's); channel_mapping='montage' places them by electrode position",
                       os.fspath(source) if source is not None else "recording", c, how, spec.n_chans)
    return map_channels_repeat(np.eye(c), spec.n_chans), {**record, "used": "repeat"}


_TILING_LOGGED: set = set()  # (recording's channels, model's channels) already said


@functools.lru_cache(maxsize=256)
def _warn_repeat_fallback(source: str, reason: str) -> None:
    """Say once per recording and reason that montage mapping fell back to repeat (every window of a file would
    say it again: ``generate --onset`` repeated, the app's slider, a stream's every marker)."""
    logger.warning("%s: %s; using channel_mapping='repeat' for it", source, reason)


def _selection(m: np.ndarray) -> np.ndarray | None:
    """The row indices if ``m`` only selects channels (repeat mapping), else None."""
    if np.all((m == 0) | (m == 1)) and np.all(m.sum(axis=1) == 1):
        return m.argmax(axis=1)
    return None


def _apply_map(m: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``m [n, C]`` applied to ``x [..., C, T]``; a pure selection (repeat) is done by indexing."""
    sel = _selection(m)
    if sel is not None:
        return x[..., sel, :]
    return np.matmul(m.astype(x.dtype, copy=False), x)


def standardize_raw(raw: mne.io.BaseRaw, spec: InputSpec, plan: np.ndarray | None = None) -> np.ndarray:
    """``raw`` -> ``float32 [spec.n_chans, n_samples]`` at ``spec.sfreq``, not windowed.

    EEG channels picked, band-passed (MNE FIR, zero phase), notch-filtered if asked, resampled
    to the common rate, then mapped onto ``spec.n_chans`` channels. Values are in microvolts;
    normalisation happens per window (``normalize_windows``). ``plan``: the recording's
    :func:`channel_map`, when the caller already has it (:class:`MappedRecording`, once per file).
    """
    data, names = prepare_raw(raw, spec)
    m = plan if plan is not None else channel_map(names, spec, _source(raw))
    return np.ascontiguousarray(_apply_map(m, data), dtype=np.float32)


def iter_windows(raw: mne.io.BaseRaw, spec: InputSpec, chunk: int = 256):
    """Windows of a recording in chunks ``[k, n_chans, n_times]`` (float32, normalised).

    Filtering and resampling run once at the recording's own channel count; channel mapping and
    normalisation run per chunk, so a long single-channel recording never exists as a full
    128-channel array in memory.
    """
    data, names = prepare_raw(raw, spec)
    m = channel_map(names, spec, _source(raw))
    n = count_windows(data.shape[1], spec)
    if n == 0:
        return
    view = np.lib.stride_tricks.sliding_window_view(data, spec.n_times, axis=1)[:, ::spec.stride]  # [C, n, T]
    sel = _selection(m)
    for i in range(0, n, chunk):
        piece = view[:, i:i + chunk].transpose(1, 0, 2).astype(np.float32)  # [k, C, T]
        if sel is not None:
            # z-scoring each channel commutes with copying channels: normalise the few source
            # channels, then tile (a 1-channel recording is normalised once, not 128 times).
            yield normalize_windows(piece, spec.normalize)[:, sel]
        else:
            yield normalize_windows(np.matmul(m.astype(np.float32), piece), spec.normalize)


def count_windows(n_samples: int, spec: InputSpec) -> int:
    return 0 if n_samples < spec.n_times else (n_samples - spec.n_times) // spec.stride + 1


def windows_from_raw(raw: mne.io.BaseRaw, spec: InputSpec) -> np.ndarray:
    """All windows of a recording, standardised and normalised: ``[n, n_chans, n_times]``.

    They are held in memory at once (``iter_windows`` streams them): refused, before any work, when they would
    take more than the EEG size limit (a small ``window_stride`` over a long recording multiplies the data)."""
    n_res = int(math.ceil(raw.n_times * spec.sfreq / raw.info["sfreq"]))
    need = count_windows(n_res, spec) * spec.n_chans * spec.n_times * 4
    if need > max_eeg_bytes():
        raise DataError(f"{count_windows(n_res, spec)} windows of {spec.n_chans} x {spec.n_times} would take "
                        f"{need / 2**20:,.0f} MB, over the limit of {max_eeg_bytes() / 2**20:,.0f} MB "
                        f"({ENV_MAX_EEG_MB}; use a larger window stride)", _source(raw))
    chunks = list(iter_windows(raw, spec))
    if not chunks:
        return np.zeros((0, spec.n_chans, spec.n_times), dtype=np.float32)
    return np.concatenate(chunks, axis=0)


def window_at(raw_or_data, onset_s: float, spec: InputSpec, sfreq: float | None = None,
              ch_names: list[str] | None = None, pad_s: float = 2.0, plan: np.ndarray | None = None) -> np.ndarray:
    """One model input ``float32 [n_chans, n_times]`` starting ``onset_s`` seconds into the data.

    ``raw_or_data`` is an MNE Raw, or an array ``[C, T]``: with ``sfreq`` (its rate) it is
    treated as a raw recording and standardised like one; without, as already standardised at
    ``spec.sfreq`` with ``spec.n_chans`` channels (only cut and normalised). A Raw is cropped to
    the window plus ``pad_s`` on each side before filtering, so an epoch near the start of a long
    recording costs little and filter edge effects stay outside the window.
    """
    if isinstance(raw_or_data, mne.io.BaseRaw):
        raw = raw_or_data
    else:
        arr = np.asarray(raw_or_data, dtype=np.float64)
        if arr.ndim != 2:
            raise DataError(f"expected data [channels, samples], got shape {arr.shape}")
        if sfreq is None:
            if arr.shape[0] != spec.n_chans:
                raise DataError(f"standardised data must have {spec.n_chans} channels, got {arr.shape[0]} "
                                "(pass sfreq= to standardise raw data)")
            start = int(round(onset_s * spec.sfreq))
            if onset_s < 0 or start + spec.n_times > arr.shape[1]:
                raise DataError(f"window at {onset_s:g} s ({spec.window_s:.3f} s long) runs past the data "
                                f"({arr.shape[1] / spec.sfreq:.3f} s)")
            return normalize_windows(arr[None, :, start:start + spec.n_times], spec.normalize)[0]
        names = list(ch_names) if ch_names is not None else [f"EEG{i:03d}" for i in range(arr.shape[0])]
        raw = mne.io.RawArray(arr * 1e-6, mne.create_info(names, float(sfreq), "eeg"), verbose="error")
    duration = raw.n_times / raw.info["sfreq"]
    if onset_s < 0 or onset_s + spec.window_s > duration + 1e-9:
        raise DataError(f"window at {onset_s:g} s ({spec.window_s:.3f} s long) runs past the recording "
                        f"({duration:.3f} s)", _source(raw))
    tmin = max(0.0, onset_s - pad_s)
    tmax = min(duration - 1.0 / raw.info["sfreq"], onset_s + spec.window_s + pad_s)
    piece = raw.copy().crop(tmin, tmax, include_tmax=True)
    data = standardize_raw(piece, spec, plan)
    start = int(round((onset_s - tmin) * spec.sfreq))
    start = min(start, data.shape[1] - spec.n_times)
    if start < 0:
        raise DataError("recording too short for one window", _source(raw))
    return normalize_windows(data[None, :, start:start + spec.n_times], spec.normalize)[0]


class MappedRecording:
    """A recording mapped onto the model's channels once, and the windows read from it: the one path from a
    recording to model windows (``generate --eeg-file``, the web app and the live stream all take it), so the same
    file, onset and mapping give the same window everywhere.

    ``mapping`` overrides ``spec.channel_mapping`` (``montage``: spherical-spline interpolation from electrode
    positions; ``repeat``: tile the recorded channels). Under ``montage``, channels whose names are not 10-05
    names but which have positions (from the file or ``--montage``) are first renamed to the nearest 10-05
    position (:func:`~dreamdiffusion.data.montage.snap_to_standard_names`), so the positional mapping works for
    any cap. The renaming and the channel plan (for ``montage`` the spline's matrix) are worked out once here,
    not once per window. Errors name ``source`` when it is given.
    """

    def __init__(self, raw: mne.io.BaseRaw, spec: InputSpec, mapping: str | None = None,
                 source: str | os.PathLike | None = None):
        self.original, self.source = raw, source
        with self._naming():
            self.raw, self.spec = _as_mapped(raw, spec, mapping)
        self._plan: tuple[np.ndarray, dict] | None = None

    @contextlib.contextmanager
    def _naming(self):
        try:
            yield
        except DreamDiffusionError as exc:
            if self.source is None:
                raise
            raise type(exc)(exc.message, self.source) from exc

    def _channel_plan(self) -> tuple[np.ndarray, dict]:
        if self._plan is None:
            names = [self.raw.ch_names[i] for i in _good_eeg(self.raw)]
            if not names:
                pick_eeg(self.raw)  # raises the error every path gives a recording without good EEG channels
            where = self.source if self.source is not None else _source(self.raw)
            matrix, record = channel_plan(names, self.spec, None if where is None else os.fspath(where))
            self._plan = matrix, {"names": names, **record}
        return self._plan

    def window(self, onset_s: float) -> np.ndarray:
        """The model's input ``float32 [n_chans, n_times]`` for the window at ``onset_s`` seconds."""
        with self._naming():
            onset = float(onset_s)
            if not math.isfinite(onset):
                raise DataError(f"onset must be a finite number of seconds, got {onset_s!r}")
            return window_at(self.raw, onset, self.spec, plan=self._channel_plan()[0])

    def channels(self) -> dict:
        """How the windows map this recording's channels, for a manifest: the good EEG channels read (``names``,
        after the renaming by position, which ``renamed_by_position`` lists) and :func:`channel_plan`'s record."""
        with self._naming():
            record = dict(self._channel_plan()[1])
        renamed = {a: b for a, b in zip(self.original.ch_names, self.raw.ch_names) if a != b}
        return {**record, "renamed_by_position": renamed} if renamed else record


def recording_window(raw: mne.io.BaseRaw, onset_s: float, spec: InputSpec, mapping: str | None = None,
                     source: str | os.PathLike | None = None) -> np.ndarray:
    """The model's input ``float32 [n_chans, n_times]`` for the window of a recording at ``onset_s``: one window of
    :class:`MappedRecording` (use that for several windows of one recording: it maps the channels once)."""
    return MappedRecording(raw, spec, mapping, source).window(onset_s)


def recording_channels(raw: mne.io.BaseRaw, spec: InputSpec, mapping: str | None = None,
                       source: str | os.PathLike | None = None) -> dict:
    """How :func:`recording_window` maps this recording's channels, for a manifest (:meth:`MappedRecording.channels`)."""
    return MappedRecording(raw, spec, mapping, source).channels()


def _as_mapped(raw: mne.io.BaseRaw, spec: InputSpec, mapping: str | None) -> tuple[mne.io.BaseRaw, InputSpec]:
    """``(raw, spec)`` under ``mapping`` (None: the spec's): montage mapping first renames channels of other names
    that have positions to the nearest of the model's cap (:func:`snap_to_standard_names`)."""
    mapping = mapping or spec.channel_mapping
    if mapping not in CHANNEL_MAPPINGS:
        raise ConfigError(f"unknown channel mapping {mapping!r} (use one of: {', '.join(CHANNEL_MAPPINGS)})")
    spec = dataclasses.replace(spec, channel_mapping=mapping)
    return (snap_to_standard_names(raw, spec.montage) if mapping == "montage" else raw), spec
