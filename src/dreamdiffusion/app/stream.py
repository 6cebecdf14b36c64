"""Live generation from an EEG headset over the Lab Streaming Layer (``dreamdiffusion stream``).

An :class:`mne_lsl.stream.StreamLSL` keeps a ring buffer of the EEG stream. A trigger, either
a clock (``every`` seconds) or a marker on an LSL marker stream (``on_marker``), takes a window
from the buffer: the latest one for the clock, the one starting at the marker for markers
(stimulus-locked, as the model was trained). The window is prepared exactly like a file's
(``Engine.window``: band-pass, resampling, channel mapping by position, z-score) and the image is
written atomically to the output folder, with one JSON line per image in ``manifest.jsonl``.
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import mne
import numpy as np

from dreamdiffusion.app.devices import resolve_montage
from dreamdiffusion.app.engine import Engine, append_jsonl, save_image
from dreamdiffusion.core.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

MANIFEST = "manifest.jsonl"
CONTEXT_S = 1.0  # EEG kept before each window so the band-pass filter settles outside it


class StaleMarker(DataError):
    """A marker older than the ring buffer (e.g. sent before the EEG connection): it is skipped."""


@dataclass
class Trigger:
    """When and why to generate: ``t_start`` is the LSL time (local clock) the window starts at,
    ``None`` meaning "the latest window"."""

    reason: str
    t_start: float | None = None
    marker: str | None = None


def require_lsl():
    """Fail in one line where mne-lsl or its liblsl is missing (``scripts/setup.sh demo`` leaves mne-lsl out)."""
    try:
        import mne_lsl  # noqa: F401
        from mne_lsl.lsl import library_version  # loads liblsl (bundled in mne-lsl's wheels)

        library_version()
    except Exception as exc:  # ImportError, or liblsl missing: OSError/RuntimeError
        raise ConfigError(f"live streaming needs mne-lsl with liblsl ({type(exc).__name__}: {exc}); "
                          "run `bash scripts/setup.sh` (the whole set-up) or pip install 'dreamdiffusion[stream]'") from exc


def connect_eeg(stream_name: str, bufsize_s: float, timeout: float = 10.0):
    """Connect a ring-buffered ``StreamLSL`` to the EEG stream called ``stream_name``."""
    require_lsl()
    from mne_lsl.stream import StreamLSL

    stream = StreamLSL(bufsize=bufsize_s, name=stream_name)
    try:
        # clocksync + dejitter: timestamps in this machine's LSL clock, so markers line up.
        stream.connect(acquisition_delay=0.01, processing_flags=["clocksync", "dejitter"], timeout=timeout)
    except (RuntimeError, TimeoutError) as exc:
        raise DataError(f"no LSL stream named {stream_name!r} answered within {timeout:g} s (is the headset "
                        f"software streaming? list streams with `python -m mne_lsl.lsl`?): {exc}") from exc
    if "eeg" in stream.get_channel_types():
        stream.pick("eeg")
    return stream


def open_markers(stream_name: str, timeout: float = 10.0):
    """A ``StreamInlet`` on the marker stream called ``stream_name`` (strings or numbers)."""
    require_lsl()
    from mne_lsl.lsl import StreamInlet, resolve_streams

    found = resolve_streams(timeout=timeout, name=stream_name)
    if not found:
        raise DataError(f"no LSL marker stream named {stream_name!r} found within {timeout:g} s")
    inlet = StreamInlet(found[0], processing_flags=["clocksync", "dejitter"])
    inlet.open_stream(timeout=timeout)
    return inlet


def window_raw(stream, trigger: Trigger, window_s: float) -> tuple[mne.io.RawArray, float] | None:
    """``(raw, onset_s)``: the buffered EEG for ``trigger`` (the window plus up to ``CONTEXT_S``
    before it) and where in it the window starts; ``None`` while that EEG has not arrived yet."""
    data, ts = stream.get_data()
    if data.shape[1] == 0:
        return None
    start = None
    sfreq = float(stream.info["sfreq"])
    n_win = int(np.ceil(window_s * sfreq)) + 1
    n_ctx = int(round(CONTEXT_S * sfreq))
    if trigger.t_start is None:
        stop = data.shape[1]
    else:
        start = int(np.searchsorted(ts, trigger.t_start))
        if start == 0 and ts[0] > trigger.t_start + 1.0 / sfreq:
            raise StaleMarker(f"marker {trigger.marker!r} is older than the buffered EEG")
        stop = start + n_win
        if stop > data.shape[1]:
            return None  # the window after the marker is still arriving
    begin = max(0, stop - n_win - n_ctx)
    if stop - begin < n_win:
        return None
    info = mne.create_info(list(stream.ch_names), sfreq, "eeg")
    raw = mne.io.RawArray(data[:, begin:stop], info, verbose="error")
    montage = stream.get_montage()
    if montage is not None:
        raw.set_montage(montage, on_missing="ignore", verbose="error")
    onset = (stop - n_win - begin) / sfreq if start is None else (start - begin) / sfreq
    return raw, onset


def _poll_triggers(inlet, pending: deque, every: float | None, next_tick: float) -> float:
    """Queue the markers that arrived (marker mode) or one interval trigger when due; returns the next tick."""
    if inlet is not None:
        values, stamps = inlet.pull_chunk(timeout=0.0)
        for value, stamp in zip(values, stamps):
            label = str(value[0] if np.ndim(value) else value)
            pending.append(Trigger("marker", float(stamp), label))
    elif time.monotonic() >= next_tick:
        pending.append(Trigger("interval"))
        next_tick += every
    return next_tick


def _image(engine: Engine, raw, onset: float, trigger: Trigger, t_window: float, index: int, *, stream_name: str,
           output: Path, session: str, seed: int, used: dict, mapping: str | None) -> dict:
    """One image from the window at ``onset`` of ``raw``: saved, appended to the manifest, and its record."""
    steps, guidance, window_s = used["steps"], used["guidance"], engine.window_s
    window = engine.window(raw, onset, mapping=mapping, source=f"lsl:{stream_name}")
    t0 = time.perf_counter()
    image = engine.generate(window, steps=steps, guidance=guidance, seed=seed + index, num_images=1,
                            low_level_strength=used.get("low_level_strength"))[0]
    path = save_image(image, output / f"{session}_{index:05d}.png")
    record = {"index": index, "image": path.name, "stream": stream_name, "trigger": trigger.reason,
              "marker": trigger.marker, "window_start_lsl": t_window, "window_s": window_s,
              "seed": seed + index, "steps": steps, "guidance": guidance,
              **({"low_level_strength": used["low_level_strength"]} if "low_level_strength" in used else {}),
              "settings_source": used["settings_source"], "model": engine.name, "conditioning": engine.conditioning,
              "generate_s": round(time.perf_counter() - t0, 3), "wall_time": time.time()}
    append_jsonl(output / MANIFEST, record)
    logger.info("image %d (%s%s) -> %s", index, trigger.reason, f" {trigger.marker}" if trigger.marker else "",
                path.name)
    return record


def latest_stream_images(folder: str | os.PathLike, n: int = 8) -> list[tuple[str, str]]:
    """The newest ``n`` images a ``dreamdiffusion stream --output folder`` run has written, newest
    first, as ``(path, caption)``; lines of the manifest whose image is not there yet are skipped
    (the web app's live panel reads a running stream with it)."""
    manifest = Path(folder) / MANIFEST
    if not manifest.is_file():
        return []
    out = []
    for line in reversed(manifest.read_text(encoding="utf-8").splitlines()):
        try:
            rec = json.loads(line)
        except ValueError:
            continue  # a line being written right now
        path = Path(folder) / str(rec.get("image", ""))
        if path.is_file():
            why = f"marker {rec['marker']}" if rec.get("marker") else rec.get("trigger", "")
            out.append((str(path), f"#{rec.get('index')} {why}".strip()))
        if len(out) >= n:
            break
    return out


def run_stream(engine: Engine, *, stream_name: str, output: str | os.PathLike, every: float | None = None,
               on_marker: str | None = None, max_images: int | None = None, duration: float | None = None,
               steps: int | None = None, guidance: float | None = None, seed: int = 0, mapping: str | None = None,
               montage: str | None = None, timeout: float = 10.0,
               on_image: Callable[[dict], None] | None = None, low_level_strength: float | None = None) -> list[dict]:
    """Generate images from a live LSL EEG stream until ``max_images`` or ``duration`` is reached
    (or Ctrl-C). Returns the manifest records written (one per image). ``steps``/``guidance`` left as None
    take the model's recommended values (its ``generation.json``), else 25 steps and guidance 1;
    ``low_level_strength`` likewise, for a model that guesses the image's latents (else it is ignored)."""
    if (every is None) == (on_marker is None):
        raise ConfigError("choose exactly one trigger: --every SECONDS or --on-marker STREAM")
    if every is not None and every <= 0:
        raise ConfigError(f"--every must be a positive number of seconds, got {every}")
    if max_images is None and duration is None:
        logger.info("no --max-images or --duration: streaming until interrupted (Ctrl-C)")
    used = engine.settings(steps, guidance, low_level_strength)  # checks a given strength before any stream opens
    steps, guidance = used["steps"], used["guidance"]
    if steps < 1:
        raise ConfigError(f"--steps must be at least 1, got {steps}")
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    window_s = engine.window_s
    stream = connect_eeg(stream_name, bufsize_s=max(30.0, 4 * (window_s + CONTEXT_S)), timeout=timeout)
    inlet = open_markers(on_marker, timeout=timeout) if on_marker else None
    if montage is not None:
        stream.set_montage(resolve_montage(montage), match_case=False, on_missing="raise")
    session = uuid.uuid4().hex[:8]
    logger.info("streaming from %r (%d channels at %g Hz); images go to %s", stream_name, len(stream.ch_names),
                stream.info["sfreq"], output)
    logger.info("%d steps (%s), guidance %g (%s)", steps, used["settings_source"]["steps"], guidance,
                used["settings_source"]["guidance"])
    from mne_lsl.lsl import local_clock

    records: list[dict] = []
    pending: deque[Trigger] = deque()
    started = time.monotonic()
    next_tick = started + (every or 0.0)
    try:
        while max_images is None or len(records) < max_images:
            if duration is not None and time.monotonic() - started >= duration:
                break
            next_tick = _poll_triggers(inlet, pending, every, next_tick)
            if not pending:
                time.sleep(0.01)
                continue
            try:
                got = window_raw(stream, pending[0], window_s)
            except StaleMarker as exc:
                logger.warning("%s: skipped", exc.message)
                pending.popleft()
                continue
            if got is None:
                time.sleep(0.01)
                continue
            trigger = pending.popleft()
            t_window = trigger.t_start if trigger.t_start is not None else float(local_clock()) - window_s
            record = _image(engine, *got, trigger, t_window, len(records), stream_name=stream_name, output=output,
                            session=session, seed=seed, used=used, mapping=mapping)
            records.append(record)
            if on_image is not None:
                on_image(record)
    except KeyboardInterrupt:
        logger.info("interrupted")
    finally:
        if inlet is not None:
            inlet.close_stream()
        stream.disconnect()
    return records
