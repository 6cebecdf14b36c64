"""UBP's blur and NeuroBridge's degraded views on known images: what each does, and that the seed decides it."""

import numpy as np
import pytest
from PIL import Image

from dreamdiffusion.data.image_targets import VIEW_KINDS, blur_image, degraded_view, degraded_views


def _checkerboard(size: int = 32, cell: int = 4) -> Image.Image:
    y, x = np.mgrid[:size, :size]
    board = (((x // cell) + (y // cell)) % 2 * 255).astype(np.uint8)
    return Image.fromarray(np.stack([board] * 3, axis=-1))


def test_blur_keeps_a_flat_image_and_smooths_edges():
    flat = Image.fromarray(np.full((32, 32, 3), 120, np.uint8))
    assert np.array_equal(np.asarray(blur_image(flat, 0.05)), np.asarray(flat))
    board = _checkerboard()
    assert blur_image(board, 0.0) is board  # sigma 0: unchanged
    weak, strong = (np.asarray(blur_image(board, s), np.float32) for s in (0.02, 0.08))
    sharp = np.asarray(board, np.float32)
    # the mean brightness stays; the contrast falls, more with a wider blur
    assert abs(strong.mean() - sharp.mean()) < 3
    assert sharp.std() > weak.std() > strong.std()


def test_views_are_seeded_and_each_kind_degrades_differently():
    board = _checkerboard()
    views = degraded_views(board, 6, np.random.default_rng(0))
    again = degraded_views(board, 6, np.random.default_rng(0))
    assert len(views) == 6 and all(v.size == board.size and v.mode == "RGB" for v in views)
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(views, again))
    sharp = np.asarray(board, np.float32)
    for kind in VIEW_KINDS:
        view = np.asarray(degraded_view(board, kind, np.random.default_rng(1)), np.float32)
        assert not np.array_equal(view, sharp), kind
        assert abs(view.mean() - sharp.mean()) < 12, kind  # a degradation, not another picture
    # mosaic is blocky (few distinct values), low resolution smooth (many)
    mosaic = np.asarray(degraded_view(board, "mosaic", np.random.default_rng(2)))[..., 0]
    lowres = np.asarray(degraded_view(board, "lowres", np.random.default_rng(2)))[..., 0]
    assert len(np.unique(mosaic)) < len(np.unique(lowres))
    with pytest.raises(ValueError, match="unknown view kind"):
        degraded_view(board, "rotate", np.random.default_rng(0))
