"""The pretraining corpus: built by the CLI from real EEG in several formats, bad input, MOABB."""

import json
import os
import subprocess
import sys
from pathlib import Path

import mne
import numpy as np
import pytest
import torch

from dreamdiffusion.cli import main
from dreamdiffusion.core.errors import DataError, EEGReadError
from dreamdiffusion.data.corpus import CorpusDataset, CorpusWriter, build_corpus, read_exclusions, read_manifest
from dreamdiffusion.data.transforms import InputSpec
from eeg_files import FORMATS, pyedflib_edf, write_npy, write_raw, write_spkit

SMALL = ["--n-chans", "16", "--n-times", "128", "--resample", "256"]


def _small_spec(**kw):
    return InputSpec(n_chans=16, n_times=128, sfreq=256.0, **kw)


def _run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _leftovers(folder: Path):
    return [p.name for p in folder.iterdir() if ".tmp-" in p.name or ".old-" in p.name or ".partial-" in p.name]


def test_cli_builds_corpus_from_real_eeg_in_every_format(tmp_path, capsys, spkit_raw):
    src = tmp_path / "in"
    for fmt in FORMATS:
        write_spkit(spkit_raw, src / fmt, fmt, name=f"sub-01_{fmt}")
    out = tmp_path / "corpus"
    code, stdout, err = _run(capsys, "data", "build-corpus", src, pyedflib_edf(), "--output", out, *SMALL,
                             "--max-windows-per-recording", "40")
    assert code == 0, err
    assert "windows" in stdout and "Traceback" not in err
    m = read_manifest(out)
    assert (m["n_chans"], m["n_times"], m["sfreq"]) == (16, 128, 256.0)
    recs = m["recordings"]
    assert len(recs) == 5 and m["skipped"] == []
    # 16 s at 256 Hz = 4096 samples -> 32 windows of 128 from each spkit copy; the EDF is capped
    assert [r["n_windows"] for r in recs] == [32, 32, 32, 32, 40]
    assert sum(r["n_windows"] for r in recs) == m["n_windows"] == 168
    assert {r["subject"] for r in recs[:4]} == {"sub-01"}
    assert recs[4]["subject"] == "test_subsecond"
    assert [r["n_chans_original"] for r in recs] == [14] * 4 + [1]
    assert all(r["sfreq_original"] == 128.0 for r in recs)
    assert m["spec"]["n_chans"] == 16 and InputSpec.from_dict(m["spec"]).sfreq == 256.0
    ds = CorpusDataset(out)
    assert len(ds) == 168
    x = ds[0]
    assert x.shape == (16, 128) and x.dtype == torch.float32
    assert abs(float(x.std()) - 1) < 1e-3
    # the same recording through four writers gives the same windows (EDF: 16-bit quantised)
    starts = [r["start"] for r in recs[:4]]
    for s in starts[1:]:
        np.testing.assert_allclose(ds[s].numpy(), ds[starts[0]].numpy(), atol=5e-3)
    assert _leftovers(tmp_path) == []


def test_inspect_json_is_one_object(tmp_path, capsys, spkit_raw):
    path = write_spkit(spkit_raw, tmp_path, "edf")
    code, out, err = _run(capsys, "data", "inspect", path, "--json")
    assert code == 0, err
    info = json.loads(out)
    assert info["n_channels"] == 14 and info["sfreq"] == 128.0 and info["duration_s"] == 16.0
    assert info["ch_names"][0] == "AF3"
    code, out, _ = _run(capsys, "data", "inspect", path)
    assert code == 0 and "128 Hz" in out


def test_make_sample_writes_a_readable_file(tmp_path, capsys):
    out = tmp_path / "sample_raw.fif"
    code, stdout, err = _run(capsys, "data", "make-sample", out)
    assert code == 0, err
    raw = mne.io.read_raw(out, verbose="error")
    assert len(raw.ch_names) == 14 and raw.n_times == 2048
    code, _, err = _run(capsys, "data", "make-sample", out)
    assert code == 2 and "exists" in err


def _bad_inputs(d: Path, spkit_raw):
    good = write_spkit(spkit_raw, d / "good", "fif")
    trunc = write_spkit(spkit_raw, d / "t", "edf", name="trunc")
    trunc.write_bytes(trunc.read_bytes()[:2000])
    (d / "notes.xyz").write_text("hello")
    rank3 = write_npy(d, np.zeros((2, 3, 400)), "rank3")
    nan = spkit_raw.get_data()
    nan[0, 5] = np.nan
    nanf = write_raw(mne.io.RawArray(nan, spkit_raw.info, verbose="error"), d / "n", "nan", "fif")
    short = write_raw(spkit_raw.copy().crop(0, 0.2), d / "s", "short", "fif")
    (d / "empty").mkdir()
    garbage = d / "garbage.vhdr"
    garbage.write_bytes(os.urandom(300))
    return good, {
        "truncated": (trunc, "truncated"),
        "unknown extension": (d / "notes.xyz", "unknown EEG file type"),
        "npy rank": (rank3, "2-D"),
        "nan": (nanf, "NaN"),
        "too short": (short, "shorter than one window"),
        "empty folder": (d / "empty", "no EEG files"),
        "garbage": (garbage, "cannot read"),
    }


def test_bad_inputs_give_one_line_naming_the_file(tmp_path, capsys, spkit_raw):
    good, cases = _bad_inputs(tmp_path, spkit_raw)
    for name, (path, words) in cases.items():
        out = tmp_path / f"corpus-{name.replace(' ', '-')}"
        code, stdout, err = _run(capsys, "data", "build-corpus", path, "--output", out, "--sfreq", "100", *SMALL)
        assert code == 2, (name, err)
        lines = err.strip().splitlines()
        assert len(lines) >= 1 and lines[-1].startswith("error: "), (name, err)
        assert str(path) in lines[-1] and words in lines[-1], (name, lines[-1])
        assert "Traceback" not in err
        assert not out.exists() and _leftovers(tmp_path) == [], name
        if path.is_file():
            code, _, err = _run(capsys, "data", "inspect", path, "--sfreq", "100")
            if name not in ("nan", "too short"):  # inspect reports NaN, and short files are fine
                assert code == 2 and str(path) in err and "Traceback" not in err, (name, err)


def test_bad_file_among_many_is_skipped_or_strict(tmp_path, capsys, caplog, spkit_raw):
    good, cases = _bad_inputs(tmp_path, spkit_raw)
    bad = [cases[k][0] for k in ("truncated", "unknown extension", "nan", "too short", "garbage")]
    out = tmp_path / "corpus"
    with caplog.at_level("WARNING", logger="dreamdiffusion"):
        code, stdout, err = _run(capsys, "data", "build-corpus", good, *bad, "--output", out, *SMALL)
    assert code == 0, err
    m = read_manifest(out)
    assert [r["source"] for r in m["recordings"]] == [str(good)]
    assert [s["source"] for s in m["skipped"]] == [str(b) for b in bad]
    for b in bad:  # (the CLI's log handler prints these on stderr; under pytest they go to caplog)
        assert f"skipping {b}" in caplog.text
    assert "5 skipped" in stdout
    # --strict: the first bad file stops the build, nothing is left behind
    out2 = tmp_path / "strict"
    code, _, err = _run(capsys, "data", "build-corpus", good, bad[0], "--output", out2, *SMALL, "--strict")
    assert code == 2 and str(bad[0]) in err.strip().splitlines()[-1]
    assert not out2.exists() and _leftovers(tmp_path) == []
    # --repair turns the NaN file into a usable recording
    out3 = tmp_path / "repaired"
    code, _, err = _run(capsys, "data", "build-corpus", cases["nan"][0], "--output", out3, *SMALL, "--repair")
    assert code == 0, err
    assert read_manifest(out3)["n_windows"] == 32


def test_console_script_subprocess_one_line_error(tmp_path):
    exe = Path(sys.executable).with_name("dreamdiffusion")
    bad = tmp_path / "broken.edf"
    bad.write_bytes(b"0       " + b"x" * 500)
    proc = subprocess.run([str(exe), "data", "build-corpus", str(bad), "--output", str(tmp_path / "c"), "--strict"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith(f"error: {bad}: ") and "Traceback" not in proc.stderr
    assert not (tmp_path / "c").exists()


def test_inspect_missing_file_message(tmp_path, capsys):
    code, out, err = _run(capsys, "data", "inspect", tmp_path / "missing.fif")
    assert code == 2 and err.strip() == f"error: {tmp_path / 'missing.fif'}: file not found"


def test_exclusions_by_subject_glob_and_list_file(tmp_path, spkit_raw):
    for s in ("01", "02", "03"):
        write_spkit(spkit_raw, tmp_path / "bids" / f"sub-{s}" / "eeg", "fif", name=f"sub-{s}_task-rest_eeg")
    lst = tmp_path / "exclude.txt"
    lst.write_text("# test subjects of the paired set\nsub-02\n")
    out = build_corpus([tmp_path / "bids"], tmp_path / "c", spec=_small_spec(), exclude=[lst, "*sub-03*"])
    m = read_manifest(out)
    assert [r["subject"] for r in m["recordings"]] == ["sub-01"]
    assert sorted(e["subject"] for e in m["excluded"]) == ["sub-02", "sub-03"]
    assert read_exclusions([lst, "x"]) == ["sub-02", "x"]
    with pytest.raises(DataError, match="no windows"):
        build_corpus([tmp_path / "bids"], tmp_path / "c2", spec=_small_spec(), exclude=["sub-*"])
    assert not (tmp_path / "c2").exists()


def test_npy_inputs_and_determinism(tmp_path):
    rng = np.random.default_rng(0)
    write_npy(tmp_path / "in", rng.standard_normal((4, 256 * 20)) * 30, "a")
    write_npy(tmp_path / "in", rng.standard_normal((2, 256 * 12)) * 30, "b")
    with pytest.raises(DataError, match="no windows"):  # .npy without --sfreq: every file skipped
        build_corpus([tmp_path / "in"], tmp_path / "x", spec=_small_spec())
    kw = dict(spec=_small_spec(window_stride=64), sfreq=256.0, max_windows_per_recording=30, seed=3, shard_size=16)
    a = build_corpus([tmp_path / "in"], tmp_path / "c1", **kw)
    b = build_corpus([tmp_path / "in"], tmp_path / "c2", **kw)
    ma, mb = read_manifest(a), read_manifest(b)
    assert ma["shards"] == mb["shards"] and ma["n_windows"] == 60
    for s in ma["shards"]:
        assert (a / s["file"]).read_bytes() == (b / s["file"]).read_bytes()
    c = build_corpus([tmp_path / "in"], tmp_path / "c3", **{**kw, "seed": 4})
    assert any((a / s["file"]).read_bytes() != (c / s["file"]).read_bytes() for s in ma["shards"])


def test_corpus_writer_streams_shards_and_publishes_atomically(tmp_path):
    out = tmp_path / "c"
    w = CorpusWriter(out, 3, 8, 100.0, shard_size=4)
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((6, 3, 8)), rng.standard_normal((5, 3, 8))
    w.add(a, source="a", subject="s1")
    w.begin_recording(source="b", subject="s2")
    w.extend(b[:2])
    w.extend(b[2:])
    assert not out.exists()  # nothing visible until close
    w.close()
    m = read_manifest(out)
    assert [s["n_windows"] for s in m["shards"]] == [4, 4, 3]
    assert [(r["source"], r["start"], r["n_windows"], r["shard"]) for r in m["recordings"]] == \
        [("a", 0, 6, 0), ("b", 6, 5, 1)]
    ds = CorpusDataset(out)
    got = torch.stack([ds[i] for i in range(len(ds))]).numpy()
    np.testing.assert_allclose(got, np.concatenate([a, b]).astype(np.float32))
    # batch reads through memory maps equal item reads
    batch = torch.stack(ds.__getitems__([10, 0, 5, 4]))
    np.testing.assert_array_equal(batch.numpy(), got[[10, 0, 5, 4]])
    assert isinstance(ds._shard(0), np.memmap)
    loader = torch.utils.data.DataLoader(ds, batch_size=4, shuffle=True)
    assert sum(len(x) for x in loader) == 11
    # the batch tensor passes through collate_windows uncopied, and equals the default collate
    from dreamdiffusion.data.corpus import collate_windows

    fast = torch.utils.data.DataLoader(ds, batch_size=4, shuffle=False, collate_fn=collate_windows)
    slow = torch.utils.data.DataLoader(ds, batch_size=4, shuffle=False)
    for x, y in zip(fast, slow):
        assert torch.equal(x, y)
    items = ds.__getitems__([2, 3])
    assert collate_windows(items).data_ptr() == items.tensor.data_ptr()
    # splits are disjoint and cover everything
    tr, va = CorpusDataset(out, "train", val_fraction=0.25), CorpusDataset(out, "val", val_fraction=0.25)
    assert len(tr) + len(va) == 11 and not set(tr.indices) & set(va.indices)
    # exists -> refused; overwrite replaces; a failed writer leaves nothing
    with pytest.raises(DataError, match="already exists"):
        CorpusWriter(out, 3, 8, 100.0)
    w = CorpusWriter(out, 3, 8, 100.0, overwrite=True)
    w.add(a[:1], source="c")
    w.close()
    assert read_manifest(out)["n_windows"] == 1
    w = CorpusWriter(tmp_path / "d", 3, 8, 100.0)
    with pytest.raises(DataError, match="NaN"):
        w.add(np.full((1, 3, 8), np.nan), source="bad")
    w.abort()
    assert not (tmp_path / "d").exists() and _leftovers(tmp_path) == []
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("x")
    with pytest.raises(DataError, match="not a corpus"):
        CorpusWriter(tmp_path / "mine", 3, 8, 100.0, overwrite=True)


def test_moabb_source_with_fake_dataset(tmp_path, caplog):
    pytest.importorskip("moabb")
    from moabb.datasets.fake import FakeDataset

    from dreamdiffusion.data.moabb_source import resolve_datasets

    ds = FakeDataset(n_subjects=3, n_sessions=1, n_runs=2, duration=6, channels=("C3", "Cz", "C4"), seed=0)
    out = build_corpus([], tmp_path / "c", spec=_small_spec(), moabb=[ds], exclude=["2"])
    m = read_manifest(out)
    subjects = [r["subject"] for r in m["recordings"]]
    assert subjects == ["sub-1", "sub-1", "sub-3", "sub-3"]
    assert all(r["dataset"] == ds.code and r["n_chans_original"] == 4 for r in m["recordings"])  # 3 EEG + stim
    assert all(r["n_windows"] == 12 for r in m["recordings"])  # 6 s at 256 Hz / 128
    assert [e["subject"] for e in m["excluded"]] == ["sub-2"]
    assert m["recordings"][0]["source"].startswith(f"moabb:{ds.code}/sub-1/")
    # by name, as the CLI passes it
    (got,) = resolve_datasets("FakeDataset")
    assert type(got).__name__ == "FakeDataset"
    with pytest.raises(DataError, match="unknown MOABB dataset"):
        resolve_datasets("NoSuchDataset2099")


def test_moabb_subject_failure_is_skipped(tmp_path):
    class Broken:
        code = "Broken-1"
        subject_list = [1]

        def get_data(self, subjects):
            raise ConnectionError("no network")

    with pytest.raises(DataError, match="no windows.*Broken-1.*no network"):
        build_corpus([], tmp_path / "c", spec=_small_spec(), moabb=[Broken()])
    with pytest.raises(DataError, match="no network") as e:
        build_corpus([], tmp_path / "c", spec=_small_spec(), moabb=[Broken()], strict=True)
    assert "moabb:Broken-1/sub-1" in str(e.value)


def test_missing_input_is_an_error(tmp_path):
    with pytest.raises(EEGReadError, match="not found"):
        build_corpus([tmp_path / "nope.edf"], tmp_path / "c", spec=_small_spec())


def test_memory_stays_flat_as_the_corpus_grows(tmp_path):
    """Writing streams chunks to disk and reading copies one window at a time from memory maps:
    the peak of Python-tracked (numpy) memory does not grow with the corpus."""
    import tracemalloc

    chunk = np.random.default_rng(0).standard_normal((16, 32, 256)).astype(np.float32)  # 512 KiB

    def peaks(n_chunks, root):
        tracemalloc.start()
        w = CorpusWriter(root, 32, 256, 100.0, shard_size=4096)  # one shard: nothing flushes early
        for i in range(n_chunks):
            w.add(chunk, source=str(i))
        w.close()
        write_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        ds = CorpusDataset(root)
        total = 0.0
        for i in range(len(ds)):
            total += float(ds[i][0, 0])
        read_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return write_peak, read_peak

    small = peaks(4, tmp_path / "small")  # 2 MiB corpus
    big = peaks(64, tmp_path / "big")  # 32 MiB corpus
    assert big[0] < 2 * small[0] + 2**20 and big[0] < 8 * 2**20, (small, big)
    assert big[1] < 2 * small[1] + 2**20 and big[1] < 4 * 2**20, (small, big)
