"""The web app (``dreamdiffusion app``): upload EEG or pick a benchmark sample, look at the
traces, choose a window and a channel mapping, generate images, download them.

The Gradio code is a thin layer over plain functions (:func:`load_recording`,
:func:`plot_eeg`, :func:`run_generation`) that the tests call without a browser. Every
project error reaches the page as one sentence (``gr.Error``), never as a traceback.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import mne
import numpy as np

from dreamdiffusion.app.devices import LAYOUTS, apply_montage, detect_layout
from dreamdiffusion.app.engine import MAPPINGS, Engine, GenerationRecord, save_image
from dreamdiffusion.app.stream import latest_stream_images
from dreamdiffusion.core.config import MAX_GUIDANCE, MAX_STEPS, check_number
from dreamdiffusion.core.errors import ConfigError, DreamDiffusionError, EEGReadError
from dreamdiffusion.core.files import atomic_write_bytes
from dreamdiffusion.core.seeding import check_seed
from dreamdiffusion.data.io import read_raw, write_raw_file
from dreamdiffusion.data.montage import MONTAGE_SUFFIXES, builtin_montage_name, resolve_montage
from dreamdiffusion.data.preflight import APP_MAX_EEG_MB, DEFAULT_MAX_EEG_MB, max_eeg_bytes
from dreamdiffusion.data.synthetic import MONTAGE, SFREQ, SyntheticPairs, build_benchmark

logger = logging.getLogger(__name__)

# Formats MNE reads with mne.io.read_raw (FIF, EDF/BDF/GDF, BrainVision, EEGLAB, Neuroscan).
ACCEPTED_SUFFIXES = (".fif", ".fif.gz", ".edf", ".bdf", ".gdf", ".vhdr", ".set", ".cnt")


@dataclass
class Sample:
    """A recording the app offers without an upload, with its ground-truth image when known."""

    name: str
    path: Path
    ground_truth: Path | None = None
    label: str | None = None
    onset_s: float = 0.0
    model_ready: bool = False  # the EEG already is the model's input (channels, rate, units)


@dataclass
class Loaded:
    """A recording ready to window: the Raw, where it came from, what is known about it."""

    raw: mne.io.BaseRaw
    source: str
    ground_truth: Path | None = None
    label: str | None = None
    onset_s: float = 0.0
    model_ready: bool = False  # already the model's input (benchmark EEG): only cut and z-scored
    events: list[tuple[str, float]] = field(default_factory=list)

    def summary(self) -> str:
        raw = self.raw
        layout = detect_layout(raw.ch_names)
        text = (f"**{Path(self.source).name}**: {len(raw.ch_names)} channels, {raw.info['sfreq']:g} Hz, "
                f"{raw.times[-1] + 1 / raw.info['sfreq']:.1f} s")
        if layout is not None:
            text += f" ({layout.description})"
        if self.label:
            text += f"; label: {self.label}"
        return text


def suffix_of(path: str | os.PathLike) -> str:
    name = Path(path).name.lower()
    return ".fif.gz" if name.endswith(".fif.gz") else Path(name).suffix


def _printable(text: str) -> str:
    """``text`` for the page: control characters (a newline in a file name) shown as ``?``."""
    return "".join(c if c.isprintable() else "?" for c in text)


def check_upload(path: str | os.PathLike, max_mb: float) -> Path:
    """Refuse files of other types or over the size cap before anything parses them."""
    path = Path(path)
    shown = _printable(path.name)
    if suffix_of(path) not in ACCEPTED_SUFFIXES:
        raise EEGReadError(f"file type {suffix_of(path) or '(none)'!r} is not accepted "
                           f"(upload one of: {', '.join(ACCEPTED_SUFFIXES)})", shown)
    if not path.is_file():
        raise EEGReadError("uploaded file is missing", shown)
    size_mb = path.stat().st_size / 1e6
    if size_mb > max_mb:
        raise EEGReadError(f"file is {size_mb:.1f} MB, over the {max_mb:g} MB upload limit", shown)
    return path


def read_eeg(path: Path, max_eeg_mb: float = APP_MAX_EEG_MB) -> mne.io.BaseRaw:
    """Read an uploaded recording through the project's reader, with the app's limits: the samples it declares
    must fit ``max_eeg_mb`` (checked before reading), and files it refers to must be inside its own folder."""
    return read_raw(path, max_bytes=max_eeg_bytes(max_eeg_mb), confine=True)


def _scrub(message: str, path: Path, name: str) -> str:
    """A reader's message with the upload's server-side folder taken out: the page names the file only."""
    for full in {str(path.resolve()), str(path.absolute()), str(path)}:
        message = message.replace(full, name)
    for folder in {str(path.resolve().parent), str(path.absolute().parent), str(path.parent)}:
        if folder not in ("", "."):
            message = message.replace(folder + os.sep, "").replace(folder, "<upload folder>")
            # A reader's message cut short may hold only the start of the folder: drop what is left of it.
            head = folder[: max(5, len(folder) // 2)]
            message = re.sub(re.escape(head) + r"[^\s'\"]*", "<upload folder>", message)
    return _printable(message)


MAX_POSITIONS_MB = 1.0  # an electrode positions file is a few kB


def montage_choice(text: str | None, positions_file: str | os.PathLike | None = None):
    """The montage the page asks for: a standard name typed in the box, or an uploaded positions file.

    Never a path on the server: anything typed that is not a standard montage name is refused with the same
    sentence whether or not such a path exists, so the box cannot be used to probe the server's files.
    """
    if positions_file:
        path = Path(positions_file)
        if path.suffix.lower() not in MONTAGE_SUFFIXES:
            raise EEGReadError(f"positions file type {path.suffix or '(none)'!r} is not accepted (upload one of: "
                               f"{', '.join(MONTAGE_SUFFIXES)})", path.name)
        if not path.is_file() or path.stat().st_size > MAX_POSITIONS_MB * 1e6:
            raise EEGReadError(f"positions file is missing or over {MAX_POSITIONS_MB:g} MB", path.name)
        try:
            return resolve_montage(path)
        except DreamDiffusionError as exc:
            raise EEGReadError("cannot read electrode positions from it", path.name) from exc
    name = (text or "").strip()
    if name.lower() in ("", "auto"):
        return None
    standard = set(mne.channels.get_builtin_montages())
    if name not in standard and builtin_montage_name(name) not in standard:
        raise EEGReadError(f"unknown montage name {name[:60]!r}: type a standard name (standard_1020, biosemi128, "
                           "...) or upload an electrode positions file")
    return name


def load_recording(path: str | os.PathLike, *, montage: Any = None, max_mb: float = 50.0,
                   display_name: str | None = None, max_eeg_mb: float = APP_MAX_EEG_MB) -> Loaded:
    """Check, read and place (electrode positions) one uploaded recording."""
    path = check_upload(path, max_mb)
    name = _printable(display_name or path.name)
    try:
        raw = read_eeg(path, max_eeg_mb)
    except DreamDiffusionError as exc:
        raise EEGReadError(_scrub(exc.message, path, name), name) from exc
    if len(mne.pick_types(raw.info, eeg=True, exclude=())) == 0:
        raise EEGReadError("the file has no EEG channels", name)
    apply_montage(raw, montage, source=name)
    events = [(str(d), float(o - raw.first_time)) for d, o in zip(raw.annotations.description,
                                                                   raw.annotations.onset)]
    return Loaded(raw=raw, source=name, events=events)


def load_sample(sample: Sample, montage: Any = None) -> Loaded:
    loaded = load_recording(sample.path, montage=montage, max_mb=float("inf"), display_name=sample.name,
                            max_eeg_mb=DEFAULT_MAX_EEG_MB)
    loaded.ground_truth, loaded.label, loaded.onset_s = sample.ground_truth, sample.label, sample.onset_s
    loaded.model_ready = sample.model_ready
    return loaded


def benchmark_samples(folder: str | os.PathLike, n: int = 8, seed: int = 0,
                      benchmark: str | os.PathLike | None = None) -> list[Sample]:
    """``n`` test-split trials of the built-in benchmark (simulated 128-channel EEG of real digit
    images), written once as FIF recordings with their ground-truth PNGs into ``folder``.

    ``benchmark`` is an already built benchmark folder (a demo run's, whose test images the
    model never saw); without it a small one is built from ``seed``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if benchmark is not None:
        root = Path(benchmark)
    else:  # a stratified 40-image benchmark builds in about a second; the full one takes ~30 s and 0.5 GB
        root = build_benchmark(folder / "benchmark", seed=seed, n_corpus_windows=0, n_images=40)
    pairs = SyntheticPairs(root, split="test")
    montage = mne.channels.make_standard_montage(MONTAGE)
    samples = []
    for i in range(min(n, len(pairs))):
        item = pairs[i]
        stem = Path(item["image_name"]).stem
        eeg_path, truth_path = folder / f"{stem}_eeg.fif", folder / f"{stem}_truth.png"
        if not eeg_path.is_file():
            eeg = item["eeg"].numpy().astype(np.float64)
            info = mne.create_info(montage.ch_names[: eeg.shape[0]], SFREQ, "eeg")
            raw = mne.io.RawArray(eeg * 1e-6, info, verbose="error")  # z-scored units, stored as microvolts
            raw.set_montage(montage, on_missing="ignore", verbose="error")
            write_raw_file(raw, eeg_path, overwrite=True)  # atomic: a reader never meets half a FIF file
            save_image(item["image"], truth_path)
        samples.append(Sample(name=f"benchmark test {stem} (digit {item['label']})", path=eeg_path,
                              ground_truth=truth_path, label=str(item["label"]), model_ready=True))
    return samples


def plot_eeg(raw: mne.io.BaseRaw, onset_s: float = 0.0, window_s: float | None = None,
             max_channels: int = 24, span_s: float = 8.0):
    """Stacked EEG traces around the chosen window (shaded), as a matplotlib Figure."""
    # A bare Figure (not pyplot): a long-running server must not accumulate figures in pyplot's registry.
    from matplotlib.figure import Figure

    sfreq = raw.info["sfreq"]
    total = raw.times[-1] + 1 / sfreq
    start = max(0.0, min(onset_s - span_s / 4, total - span_s))
    stop = min(total, start + span_s)
    picks = mne.pick_types(raw.info, eeg=True, exclude=())[:max_channels]
    data, times = raw.get_data(picks=picks, start=int(start * sfreq), stop=int(stop * sfreq), return_times=True)
    times = times + start - times[0] if len(times) else times
    data = data - data.mean(axis=1, keepdims=True)
    scale = np.percentile(np.abs(data), 99) or 1.0
    fig = Figure(figsize=(9, 0.25 * len(picks) + 1.2), dpi=80)
    ax = fig.subplots()
    for row, trace in enumerate(data):
        ax.plot(times, trace / (2 * scale) - row, lw=0.6, color="k")
    if window_s:
        ax.axvspan(onset_s, onset_s + window_s, color="tab:orange", alpha=0.25, label="model window")
        ax.legend(loc="upper right", fontsize=8)
    ax.set_yticks(-np.arange(len(picks)))
    ax.set_yticklabels([raw.ch_names[i] for i in picks], fontsize=7)
    ax.set_xlabel("time (s)")
    ax.set_xlim(times[0] if len(times) else 0, times[-1] if len(times) else 1)
    fig.tight_layout()
    return fig


@dataclass
class GenerationResult:
    images: list
    image_paths: list[Path]
    manifest_path: Path


def run_generation(engine: Engine, loaded: Loaded, *, onset_s: float, mapping: str = "montage",
                   steps: int | None = None, guidance: float | None = None, seed: int = 0, num_images: int = 1,
                   out_dir: str | os.PathLike, on_step: Callable[[int, int], None] | None = None,
                   low_level_strength: float | None = None) -> GenerationResult:
    """Window the recording, generate, write the PNGs and a JSON manifest into ``out_dir``.

    ``steps``/``guidance``/``low_level_strength`` left as None take the model's recommended values
    (``engine.settings``); the strength matters only to a model that guesses latents (``engine.guesses_latents``).
    """
    # The page's boxes hand over whatever was typed: every number is checked here, in one line each.
    onset_s = check_number(onset_s, "window onset", 0.0, 1e9)
    seed = check_seed(seed, "seed")
    num_images = check_number(num_images, "images", 1, 64, integer=True)
    steps = None if steps is None else check_number(steps, "steps", 1, MAX_STEPS, integer=True)
    guidance = None if guidance is None else check_number(guidance, "guidance", 1.0, MAX_GUIDANCE)
    out_dir = Path(out_dir)
    used = engine.settings(steps, guidance, low_level_strength)
    steps, guidance = used["steps"], used["guidance"]
    as_stored = loaded.model_ready and engine.accepts_standardized(loaded.raw)
    if as_stored:
        # Benchmark trials are stored as the model saw them in training: filtering or remapping
        # them again would change the input; only the window is cut and z-scored.
        window = engine.window_standardized(loaded.raw, float(onset_s), source=loaded.source)
    else:
        recording = engine.mapped(loaded.raw, mapping=mapping, source=loaded.source)  # its channels mapped once
        window = recording.window(float(onset_s))
    images = engine.generate(window, steps=int(steps), guidance=float(guidance), seed=int(seed),
                             num_images=int(num_images), on_step=on_step,
                             low_level_strength=used.get("low_level_strength"))
    stem = Path(loaded.source).name.split(".")[0] or "eeg"
    paths = [save_image(img, out_dir / f"{stem}_t{onset_s:.2f}_seed{seed}_{i}.png") for i, img in enumerate(images)]
    record = GenerationRecord(source=loaded.source, onset_s=float(onset_s), mapping=mapping, steps=int(steps),
                              guidance=float(guidance), seed=int(seed), images=[p.name for p in paths],
                              model=engine.name)
    record.extra = {"n_channels_recorded": len(loaded.raw.ch_names), "model_channels": engine.n_chans,
                    "model_sfreq": engine.spec.sfreq, "model_n_times": engine.spec.n_times,
                    "label": loaded.label, "prepared": "as stored (model input)" if as_stored else
                    f"band-pass, resample, {mapping} channel mapping",
                    "ground_truth": None if loaded.ground_truth is None else Path(loaded.ground_truth).name,
                    "settings_source": used["settings_source"], "conditioning": engine.conditioning}
    if not as_stored:
        record.extra["channels"] = recording.channels()
    if "low_level_strength" in used:
        record.extra["low_level_strength"] = used["low_level_strength"]
    if "model_recommends" in used:
        record.extra["model_recommends"] = used["model_recommends"]
    manifest = atomic_write_bytes(out_dir / "manifest.json",
                                  json.dumps(record.to_dict(), indent=2, sort_keys=True).encode())
    return GenerationResult(images, paths, manifest)


def require_gradio() -> None:
    """Fail in one line, before any model is loaded, where Gradio is missing (``scripts/setup.sh demo`` leaves it out)."""
    if importlib.util.find_spec("gradio") is None:
        raise ConfigError("the web app needs Gradio, which is not installed: run `bash scripts/setup.sh` (the whole "
                          "set-up) or pip install 'dreamdiffusion[web]'")


def _page_error(exc: BaseException):
    """The sentence shown in the page for an exception (a project error keeps its own message)."""
    import gradio as gr

    if isinstance(exc, gr.Error):
        return exc
    if isinstance(exc, DreamDiffusionError):
        return gr.Error(str(exc), print_exception=False)
    logger.exception("internal error in the web app")
    return gr.Error(f"internal error ({type(exc).__name__}); the server log has the details",
                    print_exception=False)


def _setting_defaults(engine: Engine) -> dict:
    """The page's starting steps and guidance: the model's recommended settings (generation.json), else 25 and 1."""
    defaults = engine.settings()
    guidance = float(defaults["guidance"])
    recommends = defaults.get("model_recommends") or {}
    info = (f"the model recommends {guidance:g}"
            + (f" (chosen on {recommends['chosen_on']})" if recommends.get("chosen_on") else "")
            if defaults["settings_source"]["guidance"] != "default" else "1: no guidance")
    strength = float(defaults.get("low_level_strength", 1.0))
    strength_info = ("share of the schedule the EEG's guess of the image is noised to: 1 = pure noise (the guess "
                     "unused), lower keeps more of its layout; "
                     + (f"the model recommends {strength:g}" if "low_level_strength" in defaults else "1: off"))
    return {"steps": int(defaults["steps"]), "guidance": guidance, "guidance_info": info,
            "guidance_step": 0.5 if float((guidance - 1.0) / 0.5).is_integer() else 0.1,
            "strength": strength, "strength_info": strength_info}


class _Handlers:
    """What the page's buttons and sliders call; every error becomes one line on the page."""

    def __init__(self, gr, engine: Engine, samples: Sequence[Sample], max_upload_mb: float, max_eeg_mb: float,
                 workdir: Path):
        self.gr, self.engine, self.workdir = gr, engine, workdir
        self.max_upload_mb, self.max_eeg_mb = max_upload_mb, max_eeg_mb
        self.samples_by_name = {s.name: s for s in samples}
        self.window_s = engine.window_s

    def load(self, upload, sample_name, montage_text, positions=None):
        gr = self.gr
        try:
            montage = montage_choice(montage_text, positions)
            if upload:
                loaded = load_recording(upload, montage=montage, max_mb=self.max_upload_mb, max_eeg_mb=self.max_eeg_mb)
            elif sample_name:
                loaded = load_sample(self.samples_by_name[sample_name], montage=montage)
            else:
                raise EEGReadError("upload an EEG file or pick a sample first")
            total = loaded.raw.times[-1] + 1 / loaded.raw.info["sfreq"]
            last = max(0.0, total - self.window_s)
            figure = plot_eeg(loaded.raw, loaded.onset_s, self.window_s)
        except Exception as exc:
            raise _page_error(exc) from None
        epochs = [f"{d} @ {o:.2f} s" for d, o in loaded.events if o <= last]
        gt = str(loaded.ground_truth) if loaded.ground_truth is not None else None
        return (loaded, loaded.summary(), figure,
                # A recording exactly one window long (a benchmark trial) has a single onset: 0.
                gr.Slider(minimum=0.0, maximum=max(round(last, 3), 0.01), value=min(loaded.onset_s, last),
                          step=0.01, interactive=last > 0),
                gr.Dropdown(choices=epochs, value=None), gr.Image(value=gt, visible=gt is not None))

    def pick_epoch(self, choice):
        if not choice:
            return self.gr.Slider()
        return self.gr.Slider(value=float(choice.rsplit("@", 1)[1].strip().rstrip("s").strip()))

    def replot(self, loaded, onset):
        if loaded is None:
            return None
        try:
            return plot_eeg(loaded.raw, float(onset), self.window_s)
        except Exception as exc:
            raise _page_error(exc) from None

    def generate(self, loaded, onset, mapping, steps, guidance, seed, num_images, progress, strength=None):
        try:
            if loaded is None:
                raise EEGReadError("load an EEG file or a sample first")
            out_dir = self.workdir / uuid.uuid4().hex[:12]
            progress(0.0, desc="preparing the EEG window")

            def on_step(step, total):
                progress(step / total, desc=f"denoising step {step}/{total}")

            result = run_generation(self.engine, loaded, onset_s=onset, mapping=mapping, steps=steps,
                                    guidance=guidance, seed=seed, num_images=num_images,
                                    out_dir=out_dir, on_step=on_step,
                                    low_level_strength=strength)
        except Exception as exc:
            raise _page_error(exc) from None
        files = [str(p) for p in result.image_paths] + [str(result.manifest_path)]
        manifest = json.loads(result.manifest_path.read_text())
        return [str(p) for p in result.image_paths], files, manifest


def _input_panel(gr, h: _Handlers, engine: Engine) -> dict:
    """The upload / sample / montage column, the EEG plot, and the window and mapping choices."""
    with gr.Row():
        with gr.Column(scale=1):
            upload = gr.File(label=f"EEG file ({', '.join(ACCEPTED_SUFFIXES)}; up to {h.max_upload_mb:g} MB)",
                             file_types=list(ACCEPTED_SUFFIXES), type="filepath", elem_id="eeg-upload")
            sample = gr.Dropdown(label="or a sample of the built-in benchmark", choices=list(h.samples_by_name),
                                 value=None, visible=bool(h.samples_by_name), elem_id="sample")
            montage = gr.Textbox(label="montage (only for files without electrode positions)",
                                 placeholder="auto, standard_1020, biosemi128, ...", value="", elem_id="montage")
            positions = gr.File(label=f"or an electrode positions file ({', '.join(MONTAGE_SUFFIXES)})",
                                file_types=list(MONTAGE_SUFFIXES), type="filepath", elem_id="positions")
            load_btn = gr.Button("Load", elem_id="load")
            info = gr.Markdown(elem_id="info")
        with gr.Column(scale=2):
            plot = gr.Plot(label="EEG traces (shaded: the window the model sees)", elem_id="traces")
    with gr.Row():
        epoch = gr.Dropdown(label="epoch (events in the file)", choices=[], elem_id="epoch")
        onset = gr.Slider(label=f"window onset (s); the model sees {h.window_s:.2f} s", minimum=0.0,
                          maximum=1.0, value=0.0, step=0.01, elem_id="onset")
        mapping = gr.Radio(label="channel mapping", choices=list(MAPPINGS), value="montage",
                           info=f"montage: interpolate the model's {engine.n_chans} channels from "
                                "electrode positions; repeat: tile the recorded channels", elem_id="mapping")
    return {"upload": upload, "sample": sample, "montage": montage, "positions": positions, "load": load_btn,
            "info": info, "plot": plot, "epoch": epoch, "onset": onset, "mapping": mapping}


def _generate_panel(gr, engine: Engine, live_dir) -> dict:
    """The sampling settings, the Generate button, and what it shows (gallery, truth, downloads, manifest)."""
    d = _setting_defaults(engine)
    with gr.Row():
        # Start at the model's recommended settings (its generation.json), else 25 steps and no guidance.
        steps = gr.Slider(label="steps", minimum=1, maximum=max(250, d["steps"]), value=d["steps"], step=1,
                          elem_id="steps")
        guidance = gr.Slider(label="guidance", minimum=1.0, maximum=max(15.0, d["guidance"]), value=d["guidance"],
                             step=d["guidance_step"], elem_id="guidance", info=d["guidance_info"])
        # Only for a model that guesses the image's latents from the EEG (the modern recipe's low-level route).
        strength = gr.Slider(label="low-level strength", minimum=0.05, maximum=1.0, value=d["strength"], step=0.01,
                             elem_id="low-level-strength", info=d["strength_info"], visible=engine.guesses_latents)
        seed = gr.Number(label="seed", value=0, precision=0)
        num_images = gr.Slider(label="images", minimum=1, maximum=8, value=1, step=1)
    gen_btn = gr.Button("Generate", variant="primary", elem_id="generate")
    with gr.Row():
        gallery = gr.Gallery(label="generated", columns=4, height=300, object_fit="contain", elem_id="gallery",
                             format="png")
        truth = gr.Image(label="ground truth", visible=False, elem_id="truth", type="filepath", height=300)
    files = gr.File(label="download images + manifest", file_count="multiple", elem_id="downloads")
    manifest = gr.JSON(label="manifest")
    if live_dir is not None:
        gr.Markdown(f"## Live stream\nThe newest images of `dreamdiffusion stream --output {live_dir}`.")
        live = gr.Gallery(label="live", columns=8, height=200, object_fit="contain", elem_id="live")
        gr.Timer(1.0).tick(lambda: latest_stream_images(live_dir), None, live, concurrency_limit=None,
                           show_progress="hidden")
    return {"steps": steps, "guidance": guidance, "strength": strength, "seed": seed, "num_images": num_images,
            "generate": gen_btn,
            "gallery": gallery, "truth": truth, "files": files, "manifest": manifest}


def build_app(engine: Engine, *, samples: Sequence[Sample] = (), max_upload_mb: float = 50.0,
              workdir: str | os.PathLike | None = None, live_dir: str | os.PathLike | None = None,
              max_eeg_mb: float = APP_MAX_EEG_MB):
    """The Gradio Blocks page. Call ``.queue(...)`` and ``.launch(...)`` on it (see :func:`serve`)."""
    import gradio as gr

    workdir = Path(workdir or tempfile.mkdtemp(prefix="dreamdiffusion-app-"))
    h = _Handlers(gr, engine, samples, max_upload_mb, max_eeg_mb, workdir)

    def generate(loaded, onset, mapping, steps, guidance, seed, num_images, strength, progress=gr.Progress()):
        return h.generate(loaded, onset, mapping, steps, guidance, seed, num_images, progress, strength)

    layouts = ", ".join(f"{lay.description}" for lay in LAYOUTS.values())
    with gr.Blocks(title="DreamDiffusion") as demo:
        gr.Markdown("# DreamDiffusion\nImages from brain EEG. Upload a recording (any MNE-readable format) "
                    "or pick a benchmark sample, choose a window, generate.")
        state = gr.State(None)
        c = _input_panel(gr, h, engine)
        g = _generate_panel(gr, engine, live_dir)
        gr.Markdown(f"Known headset layouts (mapped by position): {layouts}.")

        load_inputs = [c["upload"], c["sample"], c["montage"], c["positions"]]
        load_outputs = [state, c["info"], c["plot"], c["onset"], c["epoch"], g["truth"]]
        c["load"].click(h.load, load_inputs, load_outputs, concurrency_limit=None)
        c["upload"].upload(h.load, load_inputs, load_outputs, concurrency_limit=None)
        c["sample"].change(h.load, [gr.State(None), c["sample"], c["montage"], c["positions"]], load_outputs,
                           concurrency_limit=None)
        c["epoch"].change(h.pick_epoch, c["epoch"], c["onset"], concurrency_limit=None)
        c["onset"].release(h.replot, [state, c["onset"]], c["plot"], concurrency_limit=None)
        # Only generation is heavy: it takes the queue's default concurrency limit (--concurrency).
        g["generate"].click(generate, [state, c["onset"], c["mapping"], g["steps"], g["guidance"], g["seed"],
                                       g["num_images"], g["strength"]], [g["gallery"], g["files"], g["manifest"]],
                            concurrency_id="generate")
    return demo


def serve(engine: Engine, *, host: str = "127.0.0.1", port: int = 7860, max_upload_mb: float = 50.0,
          max_eeg_mb: float = APP_MAX_EEG_MB,
          concurrency: int = 1, samples: Sequence[Sample] = (), block: bool = True,
          workdir: str | os.PathLike | None = None, live_dir: str | os.PathLike | None = None):
    """Build, queue and launch the app; returns the Blocks (already running when ``block=False``)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    workdir = Path(workdir or tempfile.mkdtemp(prefix="dreamdiffusion-app-"))
    demo = build_app(engine, samples=samples, max_upload_mb=max_upload_mb, workdir=workdir, live_dir=live_dir,
                     max_eeg_mb=max_eeg_mb)
    # The queue bounds concurrent generations; waiting users see their position in it.
    demo.queue(default_concurrency_limit=max(1, int(concurrency)), max_size=64)
    allowed = [str(workdir)] + sorted({str(Path(s.ground_truth).parent) for s in samples if s.ground_truth})
    if live_dir is not None:
        Path(live_dir).mkdir(parents=True, exist_ok=True)
        allowed.append(str(Path(live_dir).resolve()))
    demo.launch(server_name=host, server_port=port, max_file_size=f"{max_upload_mb:g}mb",
                prevent_thread_lock=not block, show_error=True, quiet=not block, allowed_paths=allowed,
                footer_links=[])
    return demo
