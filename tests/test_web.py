"""The web app: its functions without a browser, then the real page in Debian's chromium."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app_fixtures import write_spkit_fif
from dreamdiffusion.app import web
from dreamdiffusion.core.errors import DreamDiffusionError, EEGReadError
from net_helpers import free_port

NO_GRADIO = "gradio is not installed (pip install -e '.[web]')"


@pytest.fixture(scope="module")
def emotiv_fif(tmp_path_factory, spkit_recording) -> Path:
    return write_spkit_fif(spkit_recording.copy(), tmp_path_factory.mktemp("eeg"))


def test_upload_checks_type_and_size(tmp_path, emotiv_fif):
    bad = tmp_path / "notes.txt"
    bad.write_text("not eeg")
    with pytest.raises(EEGReadError, match="not accepted"):
        web.check_upload(bad, max_mb=50)
    with pytest.raises(EEGReadError, match="upload limit"):
        web.check_upload(emotiv_fif, max_mb=0.01)
    assert web.check_upload(emotiv_fif, max_mb=50) == emotiv_fif
    garbage = tmp_path / "broken.edf"
    garbage.write_bytes(b"0" * 300)
    with pytest.raises(EEGReadError) as info:
        web.load_recording(garbage)
    assert "broken.edf" in str(info.value)


def test_load_recording_reads_real_emotiv_file(emotiv_fif):
    loaded = web.load_recording(emotiv_fif)
    assert len(loaded.raw.ch_names) == 14
    assert loaded.events == [("cat", pytest.approx(2.0)), ("dog", pytest.approx(7.5))]
    assert "Emotiv EPOC" in loaded.summary() and "14 channels" in loaded.summary()
    fig = web.plot_eeg(loaded.raw, 2.0, 0.44)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == loaded.raw.ch_names
    shaded = [p for p in fig.axes[0].patches]
    assert shaded and shaded[0].get_x() == pytest.approx(2.0)


def test_run_generation_writes_images_and_manifest(engine, emotiv_fif, tmp_path):
    loaded = web.load_recording(emotiv_fif)
    steps_seen = []
    res = web.run_generation(engine, loaded, onset_s=2.0, steps=3, seed=7, num_images=2, out_dir=tmp_path / "a",
                             on_step=lambda s, n: steps_seen.append((s, n)))
    assert steps_seen == [(1, 3), (2, 3), (3, 3)]
    assert len(res.image_paths) == 2 and all(p.is_file() for p in res.image_paths)
    assert Image.open(res.image_paths[0]).size == res.images[0].size
    manifest = json.loads(res.manifest_path.read_text())
    assert manifest["images"] == [p.name for p in res.image_paths]
    assert manifest["source"] == "emotiv_raw.fif" and manifest["seed"] == 7 and manifest["onset_s"] == 2.0
    assert manifest["n_channels_recorded"] == 14 and manifest["model_channels"] == 128
    channels = manifest["channels"]  # how the recording's channels reached the model's, as generate records it too
    assert channels["used"] == "montage" and channels["recorded_channels"] == 14 and len(channels["names"]) == 14
    assert channels["names_placed_in"] == "standard_1005" and channels["model_channels"] == 128
    assert "renamed_by_position" not in channels  # 10-05 names on a 10-05 model: nothing renamed
    assert not list((tmp_path / "a").glob("*.tmp"))  # atomic writes leave no temporaries

    # Same EEG and seed -> same image; another window of the recording -> another image.
    again = web.run_generation(engine, loaded, onset_s=2.0, steps=3, seed=7, num_images=1, out_dir=tmp_path / "b")
    other = web.run_generation(engine, loaded, onset_s=7.5, steps=3, seed=7, num_images=1, out_dir=tmp_path / "c")
    a, b, c = (np.asarray(r.images[0], dtype=float) for r in (res, again, other))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_window_mapping_and_bad_onset(engine, emotiv_fif):
    loaded = web.load_recording(emotiv_fif)
    by_position = engine.window(loaded.raw, 2.0, "montage")
    tiled = engine.window(loaded.raw, 2.0, "repeat")
    assert by_position.shape == tiled.shape == (128, 512)
    assert np.isfinite(by_position).all()
    # Tiling repeats the 14 channels exactly; positional interpolation makes new ones.
    assert np.allclose(tiled[0], tiled[14])
    assert not np.allclose(by_position, tiled)
    with pytest.raises(DreamDiffusionError, match="runs past") as info:
        engine.window(loaded.raw, 15.9, "montage", source="emotiv_raw.fif")
    assert "emotiv_raw.fif" in str(info.value)


def test_files_without_positions_take_a_montage(tmp_path, spkit_raw, caplog, monkeypatch):
    import logging

    import mne

    names = spkit_raw.ch_names
    raw = spkit_raw
    raw.set_montage(None)
    raw.rename_channels({c: f"E{i + 1}" for i, c in enumerate(raw.ch_names)})
    path = tmp_path / "nopos_raw.fif"
    raw.save(path, verbose="error")
    # A positions file for the renamed channels (what a lab exports from its digitiser).
    template = mne.channels.make_standard_montage("standard_1020").get_positions()["ch_pos"]
    pos_file = tmp_path / "cap.sfp"
    pos_file.write_text("".join(f"E{i + 1} {' '.join(f'{v * 100:.4f}' for v in template[c])}\n"
                                for i, c in enumerate(names)))
    with pytest.raises(EEGReadError, match="not in the montage"):
        web.load_recording(path, montage="standard_1020")
    loaded = web.load_recording(path, montage=str(pos_file))
    from dreamdiffusion.app.devices import has_positions, snap_to_standard_names
    from dreamdiffusion.data import montage as montage_module

    assert has_positions(loaded.raw.info)
    montage_module._say_placing.cache_clear()  # whatever an earlier test logged
    with caplog.at_level(logging.INFO, logger="dreamdiffusion.data.montage"):
        snapped = snap_to_standard_names(loaded.raw)
        again = snap_to_standard_names(loaded.raw)  # the same recording again (another request; the stream: each window)
    assert snapped.ch_names == names == again.ch_names  # each E<i> lands on its 10-20 position
    assert sum("placing" in r.getMessage() for r in caplog.records) == 1  # said once, not per read


def test_page_errors_are_sentences():
    gr = pytest.importorskip("gradio", reason=NO_GRADIO)

    err = web._page_error(EEGReadError("file is 80.0 MB, over the 50 MB upload limit", "big.edf"))
    assert isinstance(err, gr.Error) and str(err.message) == "big.edf: file is 80.0 MB, over the 50 MB upload limit"
    internal = web._page_error(ZeroDivisionError("division by zero"))
    assert "Traceback" not in str(internal.message) and "ZeroDivisionError" in str(internal.message)


def test_benchmark_samples_carry_ground_truth(engine, tmp_path):
    samples = web.benchmark_samples(tmp_path, n=2)
    assert len(samples) == 2 and all(s.path.is_file() and s.ground_truth.is_file() for s in samples)
    loaded = web.load_sample(samples[0])
    assert len(loaded.raw.ch_names) == 128 and loaded.ground_truth == samples[0].ground_truth
    # Benchmark trials already are the model's input: only z-scored, never re-filtered or remapped.
    x = loaded.raw.get_data()
    w = engine.window_standardized(loaded.raw, 0.0)
    assert np.allclose(w, (x - x.mean(1, keepdims=True)) / x.std(1, keepdims=True), atol=1e-4)
    res = web.run_generation(engine, loaded, onset_s=0.0, steps=2, out_dir=tmp_path / "out")
    manifest = json.loads(res.manifest_path.read_text())
    assert manifest["label"] == samples[0].label and manifest["ground_truth"] == samples[0].ground_truth.name
    assert manifest["prepared"].startswith("as stored")


def _fake_stream_output(folder: Path, n: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        Image.new("RGB", (8, 8), (30 * i, 0, 0)).save(folder / f"s_{i:05d}.png")
        lines.append(json.dumps({"index": i, "image": f"s_{i:05d}.png", "trigger": "marker", "marker": f"m{i}"}))
    lines.append(json.dumps({"index": n, "image": "not_yet.png", "trigger": "interval"}))
    (folder / "manifest.jsonl").write_text("\n".join(lines) + "\n" + '{"index": 99, "ima')


def test_latest_stream_images_newest_first(tmp_path):
    assert web.latest_stream_images(tmp_path / "none") == []
    _fake_stream_output(tmp_path, 3)
    got = web.latest_stream_images(tmp_path, n=2)
    assert [Path(p).name for p, _ in got] == ["s_00002.png", "s_00001.png"]
    assert got[0][1] == "#2 marker m2"


def test_cli_app_bad_model_is_one_line(tmp_path, capsys):
    from dreamdiffusion.cli import main

    assert main(["app", "--model", str(tmp_path / "missing"), "--samples", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "missing" in err[0]


def test_app_without_gradio_is_one_line_before_any_model_loads(tmp_path, capsys, monkeypatch):
    # the demo's part of the set-up leaves Gradio out; the model named here does not exist, so reaching the
    # model loader would give a different line
    from dreamdiffusion.cli import main

    real = web.importlib.util.find_spec
    monkeypatch.setattr(web.importlib.util, "find_spec", lambda name, *a: None if name == "gradio" else real(name, *a))
    assert main(["app", "--model", str(tmp_path / "missing"), "--samples", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs Gradio" in err[0] and "scripts/setup.sh" in err[0]


# ------------------------------------------------------------------------------------ browser
CHROMIUM = shutil.which("chromium") or (Path("/usr/bin/chromium").is_file() and "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM, reason="Debian's chromium is not installed (apt-get install chromium)")
def test_browser_upload_generate(engine, emotiv_fif, tmp_path):
    pytest.importorskip("gradio", reason=NO_GRADIO)
    pytest.importorskip("playwright.sync_api", reason="playwright (Python) is not installed")
    from playwright.sync_api import sync_playwright

    port = free_port()
    _fake_stream_output(tmp_path / "live", 2)
    samples = web.benchmark_samples(tmp_path / "samples", n=1)
    demo = web.serve(engine, host="127.0.0.1", port=port, block=False, workdir=tmp_path / "outputs",
                     live_dir=tmp_path / "live", samples=samples)
    # Only generation is queued with a bound (--concurrency, 1 here); loading and plotting are not.
    generate_fns = [f for f in demo.fns.values() if f.concurrency_id == "generate"]
    assert len(generate_fns) == 1 and generate_fns[0].concurrency_limit == "default"
    assert demo._queue.default_concurrency_limit == 1
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            page.set_default_timeout(30_000)
            page.goto(f"http://127.0.0.1:{port}/")
            # Generating before loading anything: a sentence in the page, not a traceback.
            page.locator("#generate").click()
            toast = page.get_by_text("load an EEG file or a sample first")
            toast.first.wait_for(state="visible")
            assert "Traceback" not in page.content()

            page.locator("#eeg-upload input[type=file]").set_input_files(str(emotiv_fif))
            page.locator("#info").get_by_text("14 channels").wait_for(state="visible")
            page.locator("#steps input[type=number]").fill("3")
            page.locator("#steps input[type=number]").press("Enter")
            page.locator("#generate").click()
            image = page.locator("#gallery img").first
            image.wait_for(state="visible")
            page.wait_for_function(
                "() => { const i = document.querySelector('#gallery img'); return i && i.complete && i.naturalWidth > 0; }")
            assert image.evaluate("i => i.naturalWidth") > 0
            page.locator("#live img").first.wait_for(state="visible")  # the stream's images, shown live
            page.screenshot(path=str(tmp_path / "app.png"), full_page=True)
            page.wait_for_function("() => document.querySelector('#downloads').innerText.includes('manifest')")

            # A benchmark sample: 128 channels, one window long, with its ground-truth image.
            page.locator("#sample input").click()
            page.get_by_role("option").first.click()
            page.locator("#truth img").wait_for(state="visible")
            page.locator("#info").get_by_text("128 channels").wait_for(state="visible")
            page.screenshot(path=str(tmp_path / "sample.png"), full_page=True)
            browser.close()
    finally:
        demo.close()
    assert (tmp_path / "app.png").stat().st_size > 10_000
    manifests = list((tmp_path / "outputs").glob("*/manifest.json"))
    assert len(manifests) == 1 and json.loads(manifests[0].read_text())["steps"] == 3
