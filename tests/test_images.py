"""Image loading, the paper's image preprocessing, CLIP preprocessing and batching."""

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from dreamdiffusion.core.errors import DataError
from dreamdiffusion.data.images import (
    ImageTransform,
    PairCollator,
    clip_pixel_values,
    collate_pairs,
    load_image,
    make_clip_processor,
    pil_to_tensor,
    tensor_to_pil,
)
from pairs_fixtures import write_jpeg


def _gradient(w=50, h=40):
    """An image whose every pixel differs, so a crop's position shows in its values."""
    y, x = np.mgrid[0:h, 0:w]
    arr = np.stack([x * 5 % 256, y * 6 % 256, (x * 3 + y * 2) % 256], axis=-1).astype(np.uint8)
    return Image.fromarray(arr)


def test_load_image_reads_real_jpeg_and_converts_modes(tmp_path):
    p = write_jpeg(tmp_path / "a.JPEG", (200, 10, 10), size=(40, 30))
    img = load_image(p)
    assert img.mode == "RGB" and img.size == (40, 30)
    assert abs(np.asarray(img)[..., 0].mean() - 200) < 15
    Image.new("L", (8, 6), 77).save(tmp_path / "g.png")
    Image.new("RGBA", (5, 5), (1, 2, 3, 4)).save(tmp_path / "rgba.png")
    assert load_image(tmp_path / "g.png").mode == "RGB"
    assert np.asarray(load_image(tmp_path / "g.png"))[0, 0].tolist() == [77, 77, 77]
    assert load_image(tmp_path / "rgba.png").mode == "RGB"


@pytest.mark.parametrize("content", [b"this is a text file, not a JPEG\n", b"", b"\xff\xd8\xff" + b"\x00" * 50])
def test_load_image_refuses_non_images(tmp_path, content):
    p = tmp_path / "n02690373_1.JPEG"
    p.write_bytes(content)
    with pytest.raises(DataError) as e:
        load_image(p)
    assert e.value.path == str(p)
    assert "image" in str(e.value)


def test_load_image_refuses_truncated_jpeg(tmp_path):
    whole = write_jpeg(tmp_path / "whole.JPEG", size=(64, 48))
    data = whole.read_bytes()
    cut = tmp_path / "cut.JPEG"
    cut.write_bytes(data[: len(data) // 2])  # header intact, pixel data cut off
    with pytest.raises(DataError) as e:
        load_image(cut)
    assert e.value.path == str(cut)


def test_load_image_missing(tmp_path):
    with pytest.raises(DataError, match="not found") as e:
        load_image(tmp_path / "nope.JPEG")
    assert e.value.path.endswith("nope.JPEG")


def test_eval_transform_is_resize_to_minus_one_one():
    img = _gradient(50, 40)
    out = ImageTransform(32, train=False)(img)
    assert out.shape == (3, 32, 32) and out.dtype == torch.float32
    expected = np.asarray(img.resize((32, 32), Image.Resampling.BILINEAR), dtype=np.float32) / 127.5 - 1
    np.testing.assert_allclose(out.permute(1, 2, 0).numpy(), expected, atol=1e-6)
    assert out.min() >= -1 and out.max() <= 1
    # Aspect ratio is not kept (the paper resizes straight to the square).
    assert ImageTransform((16, 24))(img).shape == (3, 16, 24)


def test_train_crop_is_a_crop_of_side_res_minus_20_percent_resized_back():
    img = _gradient(60, 45)
    res = 20
    side = res - int(0.2 * res)  # 16
    base = img.resize((res, res), Image.Resampling.BILINEAR)
    gen = torch.Generator().manual_seed(3)
    out = ImageTransform(res, train=True, crop_p=1.0, generator=gen)(img)
    candidates = []
    for top in range(res - side + 1):
        for left in range(res - side + 1):
            c = base.crop((left, top, left + side, top + side)).resize((res, res), Image.Resampling.BILINEAR)
            candidates.append(pil_to_tensor(c))
    matches = [bool(torch.allclose(out, c, atol=1e-6)) for c in candidates]
    assert sum(matches) >= 1
    assert not torch.allclose(out, pil_to_tensor(base))  # it did crop


def test_train_crop_probability_and_eval_never_crops():
    img = _gradient()
    base = ImageTransform(16, train=False)(img)
    gen = torch.Generator().manual_seed(0)
    t = ImageTransform(16, train=True, crop_p=0.5, generator=gen)
    cropped = sum(not torch.equal(t(img), base) for _ in range(200))
    assert 70 <= cropped <= 130  # ~Binomial(200, 0.5); identical-offset crops are impossible here
    assert all(torch.equal(ImageTransform(16, train=True, crop_p=0.0)(img), base) for _ in range(5))
    # Same generator seed, same augmentation.
    a = ImageTransform(16, train=True, crop_p=1.0, generator=torch.Generator().manual_seed(5))(img)
    b = ImageTransform(16, train=True, crop_p=1.0, generator=torch.Generator().manual_seed(5))(img)
    assert torch.equal(a, b)


def test_transform_rejects_bad_parameters():
    with pytest.raises(ValueError):
        ImageTransform(0)
    with pytest.raises(ValueError):
        ImageTransform(16, crop_ratio=1.0)
    with pytest.raises(ValueError):
        ImageTransform(16, crop_p=2)


def test_tensor_pil_round_trip():
    img = _gradient(12, 9)
    assert np.array_equal(np.asarray(tensor_to_pil(pil_to_tensor(img))), np.asarray(img))


def test_clip_pixel_values_are_clips_normalisation():
    proc = make_clip_processor(24)
    red = Image.new("RGB", (40, 30), (255, 0, 0))
    pv = clip_pixel_values([red, _gradient()], proc)
    assert pv.shape == (2, 3, 24, 24) and pv.dtype == torch.float32
    mean = np.array([0.48145466, 0.4578275, 0.40821073])
    std = np.array([0.26862954, 0.26130258, 0.27577711])
    expected = (np.array([1.0, 0.0, 0.0]) - mean) / std
    np.testing.assert_allclose(pv[0, :, 12, 12].numpy(), expected, atol=1e-4)

    class Holder:  # a CLIPProcessor-like object: its image half is used
        image_processor = proc

    assert torch.equal(clip_pixel_values(red, Holder()), pv[:1])


def _item(i, c=4, t=16, label=None):
    return {"eeg": torch.full((c, t), float(i)), "image": _gradient(20 + i, 10), "label": i if label is None else label,
            "subject": 4, "image_name": f"img{i}", "index": 10 + i}


def test_collate_pairs_batches_everything():
    items = [_item(0), _item(1), _item(2)]
    b = collate_pairs(items, ImageTransform(16), make_clip_processor(8), keep_images=True)
    assert b["eeg"].shape == (3, 4, 16) and b["eeg"][2].eq(2).all()
    assert b["pixel_values"].shape == (3, 3, 16, 16)
    assert b["clip_pixel_values"].shape == (3, 3, 8, 8)
    assert b["label"].tolist() == [0, 1, 2] and b["label"].dtype == torch.long
    assert b["index"].tolist() == [10, 11, 12]
    assert b["image_name"] == ["img0", "img1", "img2"] and b["subject"] == [4, 4, 4]
    assert len(b["images"]) == 3
    # Without transforms only the EEG side is batched.
    assert "pixel_values" not in collate_pairs(items)


def test_collate_refuses_mixed_shapes_and_empty():
    with pytest.raises(DataError, match="different shapes"):
        collate_pairs([_item(0), _item(1, c=5)])
    with pytest.raises(DataError):
        collate_pairs([])


def test_pair_collator_works_in_a_dataloader():
    collator = PairCollator(ImageTransform(8, train=True), None)
    pickle.dumps(collator)  # DataLoader workers need it picklable
    loader = torch.utils.data.DataLoader([_item(i) for i in range(5)], batch_size=2, collate_fn=collator)
    batches = list(loader)
    assert [b["eeg"].shape[0] for b in batches] == [2, 2, 1]
    assert batches[0]["pixel_values"].shape == (2, 3, 8, 8)
