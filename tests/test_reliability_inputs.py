"""Reliability of what comes in (issue 15): EEG files that lie about their size, decompression bombs, uploads
that point at the server's files, the montage box, a bad .npy among good ones, the app's number boxes.

Every file is made here. Each attack must end in one line naming the file (exit status 2 through the CLI),
quickly, and without the reader allocating what the file declares.
"""

from __future__ import annotations

import logging
import os
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from dreamdiffusion.core.errors import ConfigError, EEGReadError
from dreamdiffusion.data import preflight
from dreamdiffusion.data.io import read_raw, write_sample

MB = 2**20


def _cli(argv, capsys):
    from dreamdiffusion.cli import main

    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.err.strip().splitlines()


def _one_error(code, err, *needles):
    assert code == 2, err
    errors = [line for line in err if line.startswith("error:")]
    assert len(errors) == 1 and not any("Traceback" in line for line in err), err
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> Path:
    """An EEGLAB .set (a compressed MATLAB file, as EEGLAB writes it) holding 14 x 1,500,000 zeros: ~0.1 MB on
    disk, 168 MB as the float64 array MNE would build (the attack of the issue used 14 x 10,000,000)."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.set"
    data = np.zeros((14, 1_500_000), dtype=np.float32)
    chanlocs = np.rec.fromarrays([[f"E{i}" for i in range(14)], ["EEG"] * 14], names=["labels", "type"])
    scipy.io.savemat(str(path), dict(data=data, setname="bomb", nbchan=14.0, pnts=float(data.shape[1]), trials=1.0,
                                     srate=128.0, xmin=0.0, xmax=data.shape[1] / 128.0, ref="average",
                                     chanlocs=chanlocs, icawinv=[], icasphere=[], icaweights=[]),
                     do_compression=True)
    assert path.stat().st_size < MB
    return path


def _peak_mb(fn) -> float:
    tracemalloc.start()
    try:
        fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak / MB


def test_eeglab_decompression_bomb_is_refused_before_reading(bomb):
    def read():
        with pytest.raises(EEGReadError, match="decompression bomb") as e:
            read_raw(bomb)
        assert e.value.path == str(bomb)

    assert _peak_mb(read) < 50  # the reader never holds the 168 MB (or MNE's copies of it)


def test_bomb_through_data_inspect_and_the_app(bomb, capsys, tmp_path):
    code, err = _cli(["data", "inspect", bomb], capsys)
    _one_error(code, err, str(bomb), "decompression bomb")
    from dreamdiffusion.app import web

    with pytest.raises(EEGReadError, match="decompression bomb") as e:
        web.load_recording(bomb, max_mb=50)
    assert e.value.path == "bomb.set"  # the page names the upload, never a server path


def test_declared_size_limit_is_a_setting(tmp_path, monkeypatch, capsys):
    edf = write_sample(tmp_path / "rec.edf")  # 14 channels x 2048 samples = 0.22 MB as float64
    assert read_raw(edf, max_bytes=MB).n_times == 2048
    with pytest.raises(EEGReadError, match="14 channels x 2048 samples.*over the limit") as e:
        read_raw(edf, max_bytes=100_000)
    assert e.value.path == str(edf)
    monkeypatch.setenv(preflight.ENV_MAX_EEG_MB, "0.1")
    code, err = _cli(["data", "inspect", edf], capsys)
    _one_error(code, err, str(edf), "over the limit", preflight.ENV_MAX_EEG_MB)
    monkeypatch.setenv(preflight.ENV_MAX_EEG_MB, "lots")
    with pytest.raises(EEGReadError, match="must be a number of megabytes"):
        read_raw(edf)
    assert preflight.APP_MAX_EEG_MB * 8 <= preflight.DEFAULT_MAX_EEG_MB  # the app's limit is far lower


def _npy_with_header(path: Path, shape, descr="<f8", body: bytes = b"\0" * 64) -> Path:
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, {"descr": descr, "fortran_order": False, "shape": shape})
        fh.write(body)
    return path


@pytest.mark.parametrize("shape, descr, says", [
    ((14, -5), "<f8", "impossible shape"),
    ((-1, 100), "<f8", "impossible shape"),
    ((14, 10**12), "<f8", "declares"),  # f64huge: a huge header over a few bytes
    ((14, 2**62), "<f8", "declares"),
    ((4, 2), "|O", "object arrays are refused"),
    ((4, 2, 2), "<f4", "must be 2-D"),
])
def test_lying_npy_headers_are_one_error_naming_the_file(tmp_path, shape, descr, says):
    path = _npy_with_header(tmp_path / "bad.npy", shape, descr)
    with pytest.raises(EEGReadError, match=says) as e:
        read_raw(path, sfreq=100.0)
    assert e.value.path == str(path) and "\n" not in str(e.value)


def test_npy_over_the_limit_is_refused_from_its_header(tmp_path):
    path = tmp_path / "big.npy"
    np.save(path, np.zeros((4, 50_000), dtype=np.int8))  # 200 kB on disk, 1.6 MB as float64
    with pytest.raises(EEGReadError, match="over the limit"):
        read_raw(path, sfreq=100.0, max_bytes=MB)
    assert read_raw(path, sfreq=100.0, max_bytes=2 * MB).get_data().shape == (4, 50_000)


def test_bad_npy_in_a_corpus_is_skipped_or_refused_under_strict(tmp_path, caplog, capsys):
    from dreamdiffusion.data.corpus import build_corpus, read_manifest

    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(0)
    np.save(folder / "good.npy", rng.standard_normal((4, 2000)).astype(np.float32))
    bad = _npy_with_header(folder / "bad.npy", (14, -5))
    with caplog.at_level(logging.WARNING):
        out = build_corpus([folder], tmp_path / "corpus", spec={"n_chans": 4, "n_times": 100, "sfreq": 100.0,
                                                                "l_freq": None, "h_freq": None},
                           sfreq=100.0, progress=False)
    m = read_manifest(out)
    assert [s["source"] for s in m["skipped"]] == [str(bad)] and m["n_windows"] == 20
    assert any(str(bad) in r.getMessage() and "skipping" in r.getMessage() for r in caplog.records)
    code, err = _cli(["data", "build-corpus", folder, "--output", tmp_path / "c2", "--sfreq", "100", "--n-chans",
                      "4", "--n-times", "100", "--resample", "100", "--l-freq", "none", "--h-freq", "none",
                      "--strict"], capsys)
    _one_error(code, err, str(bad), "impossible shape")
    assert not (tmp_path / "c2").exists()
    code, err = _cli(["data", "inspect", bad, "--sfreq", "100"], capsys)
    _one_error(code, err, str(bad), "impossible shape")
    code, err = _cli(["generate", "--eeg-file", bad, "--sfreq", "100", "--output", tmp_path / "g"], capsys)
    _one_error(code, err, str(bad), "impossible shape")


# ------------------------------------------------------------------------------------ the web app


def _brainvision_upload(tmp_path: Path, data_file: str | None = None, marker_file: str | None = None) -> Path:
    src = write_sample(tmp_path / "src" / "rec.vhdr")
    up = tmp_path / "upload"
    up.mkdir()
    text = src.read_text(encoding="latin-1")
    lines = []
    for line in text.splitlines():
        if line.startswith("DataFile=") and data_file is not None:
            line = f"DataFile={data_file}"
        if line.startswith("MarkerFile=") and marker_file is not None:
            line = f"MarkerFile={marker_file}"
        lines.append(line)
    (up / "rec.vhdr").write_text("\n".join(lines) + "\n", encoding="latin-1")
    return up / "rec.vhdr"


@pytest.mark.parametrize("which", ["data-absolute", "data-dotdot", "marker-absolute"])
def test_upload_cannot_make_the_server_read_its_files(tmp_path, which):
    from dreamdiffusion.app import web

    secret = tmp_path / "server" / "secret.eeg"
    secret.parent.mkdir()
    secret.write_bytes(b"top secret bytes" * 4096)
    kind, how = which.split("-")
    ref = str(secret) if how == "absolute" else "../server/secret.eeg"
    vhdr = _brainvision_upload(tmp_path, **({"data_file": ref} if kind == "data" else {"marker_file": ref}))
    opened = []
    real_open = open

    def spy(file, *a, **k):
        opened.append(os.fspath(file) if isinstance(file, (str, os.PathLike)) else file)
        return real_open(file, *a, **k)

    import builtins

    builtins.open, saved = spy, builtins.open
    try:
        with pytest.raises(EEGReadError, match="outside the recording's folder") as e:
            web.load_recording(vhdr, max_mb=50)
    finally:
        builtins.open = saved
    assert str(secret) not in [str(Path(str(o)).resolve()) for o in opened if isinstance(o, str)]
    assert "top secret" not in str(e.value) and e.value.path == "rec.vhdr"


def test_brainvision_beside_its_files_still_loads(tmp_path):
    from dreamdiffusion.app import web

    vhdr = write_sample(tmp_path / "rec.vhdr")
    assert len(web.load_recording(vhdr, max_mb=50).raw.ch_names) == 14


def test_montage_box_takes_names_or_an_uploaded_file_never_a_server_path(tmp_path):
    from dreamdiffusion.app.web import montage_choice

    assert montage_choice("") is None and montage_choice(" auto ") is None
    assert montage_choice("standard_1020") == "standard_1020" and montage_choice("biosemi64") == "biosemi64"
    real = tmp_path / "caps.elc"
    real.write_text("# a file that exists on the server\n")
    messages = set()
    for text in (str(real), str(tmp_path / "missing.elc"), "/etc/passwd", "../../etc/hostname", "no_such_cap"):
        with pytest.raises(EEGReadError) as e:
            montage_choice(text)
        messages.add(str(e.value).replace(repr(text[:60]), "X"))
    assert len(messages) == 1, messages  # the same sentence whether or not the path exists
    pos = tmp_path / "upload" / "positions.sfp"
    pos.parent.mkdir()
    pos.write_text("Fz 0.0 0.07 0.08\nCz 0.0 0.0 0.1\nPz 0.0 -0.07 0.08\n")
    assert montage_choice("", pos).ch_names == ["Fz", "Cz", "Pz"]
    bad = tmp_path / "upload" / "bad.sfp"
    bad.write_text("garbage\x00\x01")
    with pytest.raises(EEGReadError) as e:
        montage_choice("", bad)
    assert e.value.path == "bad.sfp" and str(tmp_path) not in str(e.value)


@pytest.mark.parametrize("field, value, says", [
    ("seed", 2**70, "seed must be an integer between 0 and"), ("seed", -1, "seed"), ("seed", None, "seed"),
    ("onset_s", float("nan"), "window onset"), ("steps", 10**9, "steps"), ("guidance", float("inf"), "guidance"),
    ("guidance", -5, "guidance"), ("num_images", 0, "images"),
])
def test_app_number_boxes_are_checked(tmp_path, field, value, says):
    from dreamdiffusion.app.web import run_generation

    kwargs = {"onset_s": 0.0, "seed": 0, "steps": 2, "guidance": 1.0, "num_images": 1, field: value}
    with pytest.raises(ConfigError, match=says):
        run_generation(None, None, out_dir=tmp_path / "o", **kwargs)


def test_eeglab_fdt_outside_the_upload_folder_is_refused(tmp_path):
    """An EEGLAB .set names its .fdt inside the (compressed) header; in the app it must stay in the folder."""
    from dreamdiffusion.app import web

    secret = tmp_path / "server" / "secret.fdt"
    secret.parent.mkdir()
    np.random.default_rng(0).standard_normal((4, 1000)).astype(np.float32).tofile(secret)
    up = tmp_path / "upload"
    up.mkdir()
    chanlocs = np.rec.fromarrays([[f"E{i}" for i in range(4)], ["EEG"] * 4], names=["labels", "type"])
    scipy.io.savemat(str(up / "a.set"), dict(data=str(secret), setname="x", nbchan=4.0, pnts=1000.0, trials=1.0,
                                             srate=100.0, xmin=0.0, xmax=10.0, ref="average", chanlocs=chanlocs,
                                             icawinv=[], icasphere=[], icaweights=[]))
    assert read_raw(up / "a.set").n_times == 1000  # the CLI reads a user's own files where they are
    with pytest.raises(EEGReadError, match="outside the recording's folder") as e:
        web.load_recording(up / "a.set", max_mb=50)
    assert e.value.path == "a.set"


def test_a_file_that_crashes_the_matlab_reader_is_refused(tmp_path, monkeypatch):
    """scipy's MATLAB parser (under MNE's EEGLAB reader) segfaulted on a damaged .set in the long fuzz run: the
    header is parsed in a child first, and a child killed by a signal refuses the file instead of killing us."""
    path = write_sample(tmp_path / "rec.set")
    assert read_raw(path).n_times == 2048  # a sound file passes the probe
    monkeypatch.setattr(preflight, "_MAT_PROBE", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)")
    with pytest.raises(EEGReadError, match="crashes the MATLAB reader") as e:
        read_raw(path)
    assert e.value.path == str(path)
