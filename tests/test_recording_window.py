"""One recording -> model window path: ``generate --eeg-file`` and the app's engine prepare a file alike."""

from __future__ import annotations

import mne
import numpy as np
import pytest
import torch

from app_fixtures import write_spkit_fif
from dreamdiffusion.app import web
from dreamdiffusion.app.engine import Engine
from dreamdiffusion.core.errors import ConfigError, DataError, EEGShapeError
from dreamdiffusion.generation import load_pipeline, sources_from_file
from dreamdiffusion.pipeline import resolve_pipeline_folder

# tiny_pipeline_folder (conftest.py): its preprocessing.json says channel_mapping "montage", so the 14 Emotiv
# channels are interpolated onto 128.


def _foreign_names_fif(folder, raw) -> tuple:
    """The Emotiv recording with its channels renamed E1..E14, positions kept (as a cap with its own names)."""
    names = {c: f"E{i + 1}" for i, c in enumerate(raw.ch_names)}
    raw.rename_channels(names)
    path = folder / "foreign_raw.fif"
    raw.save(path, overwrite=True, verbose="error")
    return path


def _generate_window(tiny_pipeline_folder, path, onset):
    pipe = load_pipeline(tiny_pipeline_folder, device="cpu")  # what `generate --eeg-file` does
    (source,) = sources_from_file(path, pipe.input_spec(), [onset])
    return source.eeg.numpy()


def _app_window(tiny_pipeline_folder, path, onset):
    engine = Engine.from_pretrained(tiny_pipeline_folder)  # what the web app does
    return engine.window(web.load_recording(path).raw, onset, "montage", source=path.name)


def test_generate_and_app_give_the_same_window(tiny_pipeline_folder, tmp_path, spkit_raw):
    fif = write_spkit_fif(spkit_raw.copy(), tmp_path)
    by_generate = _generate_window(tiny_pipeline_folder, fif, 2.0)
    by_app = _app_window(tiny_pipeline_folder, fif, 2.0)
    assert by_generate.shape == (128, 512) and by_generate.dtype == np.float32
    assert np.array_equal(by_generate, by_app)
    # montage mapping really interpolated: tiling would repeat channel 0 at row 14
    assert not np.allclose(by_generate[0], by_generate[14])

    # A cap whose channels are not 10-05 names but have positions: both paths snap them to the
    # nearest 10-05 names (before, only the app did; generate fell back to tiling them).
    foreign = _foreign_names_fif(tmp_path, spkit_raw)
    foreign_generate = _generate_window(tiny_pipeline_folder, foreign, 2.0)
    assert np.array_equal(foreign_generate, _app_window(tiny_pipeline_folder, foreign, 2.0))
    np.testing.assert_allclose(foreign_generate, by_generate, atol=1e-5)


def test_window_errors_name_the_file(tiny_pipeline_folder, tmp_path, spkit_raw):
    fif = write_spkit_fif(spkit_raw, tmp_path)
    pipe = load_pipeline(tiny_pipeline_folder, device="cpu")
    with pytest.raises(DataError, match="runs past") as info:
        sources_from_file(fif, pipe.input_spec(), [15.9])
    assert str(fif) in str(info.value)
    with pytest.raises(DataError, match="finite"):
        sources_from_file(fif, pipe.input_spec(), [float("nan")])


def test_one_pipeline_folder_resolver(tiny_pipeline_folder, tmp_path):
    run = tmp_path / "demo_run"
    (run / "finetune").mkdir(parents=True)
    (run / "finetune" / "pipeline").symlink_to(tiny_pipeline_folder, target_is_directory=True)
    assert resolve_pipeline_folder(tiny_pipeline_folder) == tiny_pipeline_folder
    assert resolve_pipeline_folder(tiny_pipeline_folder.parent) == tiny_pipeline_folder  # a finetune output folder
    assert resolve_pipeline_folder(run) == run / "finetune" / "pipeline"  # a demo run folder
    with pytest.raises(ConfigError, match="pipeline folder not found") as info:
        resolve_pipeline_folder(tmp_path / "no" / "such")
    assert str(tmp_path / "no" / "such") in str(info.value)
    with pytest.raises(ConfigError, match="no model_index.json"):
        resolve_pipeline_folder(tmp_path)
    assert Engine.from_pretrained(run).spec == load_pipeline(run, device="cpu").input_spec()


def test_input_spec_ignores_unknown_preprocessing_keys(tiny_pipeline_folder):
    pipe = load_pipeline(tiny_pipeline_folder, device="cpu")
    pipe.preprocessing = {**pipe.preprocessing, "written_by_a_newer_version": 1}
    spec = pipe.input_spec()
    assert spec.channel_mapping == "montage" and spec.n_chans == 128 and spec.l_freq == 1.0
    assert isinstance(mne.channels.make_standard_montage("biosemi32"), mne.channels.DigMontage)


def test_one_shape_check_one_error(tiny_pipeline_folder):
    pipe = load_pipeline(tiny_pipeline_folder, device="cpu")
    engine = Engine(pipe, pipe.input_spec())
    bad = np.zeros((14, 512), dtype=np.float32)
    errors = []
    for call in (lambda: engine.generate(bad, steps=1),
                 lambda: pipe(bad, num_inference_steps=1),
                 lambda: pipe.eeg_conditioner(torch.from_numpy(bad)[None]),
                 lambda: pipe.eeg_conditioner.encoder(torch.from_numpy(bad)[None])):
        with pytest.raises(EEGShapeError) as info:
            call()
        errors.append(info.value)
    assert len({e.message for e in errors}) == 1  # the same sentence wherever it is caught
    assert "expects 128 EEG channels, found 14" in errors[0].message and "--channel-mapping" in errors[0].message
    assert all(isinstance(e, ConfigError) and isinstance(e, ValueError) for e in errors)


def test_montage_fallback_is_said_once_per_recording(tiny_pipeline_folder, tmp_path, caplog):
    """One channel has too few positions for montage mapping: the fall-back to repeat is logged once for the file,
    not once per window (``generate --onset`` repeated, the app's slider, a stream's every marker)."""
    info = mne.create_info(["Fp1"], 128.0, ch_types="eeg")
    raw = mne.io.RawArray(np.random.default_rng(0).normal(0, 1e-5, (1, 128 * 20)), info, verbose="error")
    path = tmp_path / "one_channel_raw.fif"
    raw.save(path, verbose="error")
    pipe = load_pipeline(tiny_pipeline_folder, device="cpu")
    with caplog.at_level("WARNING", logger="dreamdiffusion.data.transforms"):
        sources = sources_from_file(path, pipe.input_spec(), [0.0, 1.0, 2.0])
    said = [r for r in caplog.records if "using channel_mapping='repeat'" in r.getMessage()]
    assert len(sources) == 3 and len(said) == 1
    assert str(path) in said[0].getMessage() and "1 of 1 channels" in said[0].getMessage()
    # tiled, as the message says: every model channel is the one recorded channel
    eeg = sources[0].eeg.numpy()
    assert np.array_equal(eeg[0], eeg[5])


def test_a_file_is_mapped_once_for_all_its_windows(tiny_pipeline_folder, tmp_path, spkit_raw, monkeypatch):
    from dreamdiffusion.data import transforms

    foreign = _foreign_names_fif(tmp_path, spkit_raw)  # needs the renaming by position and the spline
    spec = load_pipeline(tiny_pipeline_folder, device="cpu").input_spec()
    singles = [_generate_window(tiny_pipeline_folder, foreign, onset) for onset in (1.0, 2.0, 3.5)]
    calls = {"snap": 0, "plan": 0}

    def counted(name, real):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return real(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(transforms, "snap_to_standard_names", counted("snap", transforms.snap_to_standard_names))
    monkeypatch.setattr(transforms, "channel_plan", counted("plan", transforms.channel_plan))
    sources = sources_from_file(foreign, spec, [1.0, 2.0, 3.5])
    assert calls == {"snap": 1, "plan": 1}  # not once per window, nor again for the manifest
    for single, source in zip(singles, sources):
        assert np.array_equal(single, source.eeg.numpy())  # the same window as a file read for it alone
    channels = sources[0].source["channels"]
    assert channels["used"] == "montage" and channels["renamed_by_position"]["E1"] != "E1"
    assert all(s.source["channels"] == channels for s in sources)
