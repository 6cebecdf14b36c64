"""benchmarks/class_ceiling.py: the digit named from the raw EEG's val trials by the ridge and by other decoders."""

from __future__ import annotations

import json

from dreamdiffusion.data import synthetic


def test_every_decoder_scored_on_val_only(tmp_path, benchmark_script):
    # 300 digits, 2 trials each, at an SNR where a linear decoder reads the digit well
    bench = synthetic.build_benchmark(tmp_path / "bench", seed=3, n_subjects=2, n_corpus_windows=0, n_images=300,
                                      trials_per_image=2, snr=0.3)
    cc = benchmark_script("class_ceiling")
    x, labels, images = cc.split_arrays(bench, "val")
    splits = json.loads((bench / "splits.json").read_text())
    assert set(images.tolist()) == set(splits["val"])  # the val trials and no other: test is never read
    assert x.shape[1] == 128 * 8 and len(labels) == len(images) == 2 * len(splits["val"])
    out = tmp_path / "cc.json"
    assert cc.main([str(bench), "--output", str(out)]) == 0
    row = json.loads(out.read_text())["rows"][0]
    decoders = [k for k in row if k not in ("benchmark", "n_train", "n_val", "seconds")]
    assert len(decoders) == 5 and set(row["seconds"]) == set(decoders)
    assert row["n_val"] == len(labels)
    # the linear decoders read the digit far above chance (0.1) on this easy benchmark
    assert row["ridge (the demo's)"] > 0.6 and row["shrinkage LDA"] > 0.6
    assert all(0.0 <= row[k] <= 1.0 for k in decoders)
