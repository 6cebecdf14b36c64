"""Pixel-level similarity of generated and ground-truth images: SSIM and PCC, one pair or every pair at once.

The SSIM is skimage's ``structural_similarity`` with its defaults (7 x 7 uniform window, K1 0.01, K2 0.03), the
one the paper's code calls, computed in torch for whole matrices of pairs; :mod:`dreamdiffusion.evaluation.metrics`
turns these matrices into the 2-way identification scores.
"""

from __future__ import annotations

import numpy as np
import torch

# Constants of skimage.metrics.structural_similarity's defaults (Wang et al. 2004), which the paper's code uses.
SSIM_WIN_SIZE = 7
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def to_uint8_array(images) -> np.ndarray:
    """PIL images / arrays -> uint8 [N, H, W, 3] (the paper's metrics run on 0..255 pixel values)."""
    arrays = []
    for img in images:
        a = np.asarray(img.convert("RGB") if hasattr(img, "convert") else img)
        if a.ndim == 2:
            a = np.repeat(a[..., None], 3, axis=-1)
        if a.dtype != np.uint8:
            if a.max(initial=0) <= 1.0 and a.min(initial=0) >= 0.0 and np.issubdtype(a.dtype, np.floating):
                a = a * 255.0
            a = np.clip(np.rint(a), 0, 255).astype(np.uint8)
        arrays.append(a)
    if not arrays:
        return np.zeros((0, 1, 1, 3), dtype=np.uint8)
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise ValueError(f"images must share one size, got {sorted(shapes)}")
    return np.stack(arrays)


def _window_means(x: torch.Tensor) -> torch.Tensor:
    """Means over every full 7x7 window: [B, C, H, W] -> [B, C, H-6, W-6].

    skimage filters with a reflected border and then crops 3 pixels on each side, so only windows that lie
    entirely inside the image are ever averaged: the valid-mode box mean computed here.
    """
    # Box sums from an integral image (float64, exact for 8-bit inputs): a few passes instead of 49 adds per pixel.
    w = SSIM_WIN_SIZE
    c = torch.nn.functional.pad(x.cumsum(2).cumsum(3), (1, 0, 1, 0))
    return (c[..., w:, w:] - c[..., :-w, w:] - c[..., w:, :-w] + c[..., :-w, :-w]) / (w * w)


def _as_nchw(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images)).to(torch.float64).permute(0, 3, 1, 2)


def _ssim_from_stats(ux, uy, uxx, uyy, uxy, data_range: float) -> torch.Tensor:
    n_pixels = SSIM_WIN_SIZE ** 2
    cov_norm = n_pixels / (n_pixels - 1)  # sample covariance, as skimage's default
    vx, vy, vxy = cov_norm * (uxx - ux * ux), cov_norm * (uyy - uy * uy), cov_norm * (uxy - ux * uy)
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux ** 2 + uy ** 2 + c1) * (vx + vy + c2))
    return s.mean(dim=(1, 2, 3))  # mean over the map and the colour channels


def _check_ssim_size(x: np.ndarray) -> None:
    if x.shape[1] < SSIM_WIN_SIZE or x.shape[2] < SSIM_WIN_SIZE:
        raise ValueError(f"SSIM needs images of at least {SSIM_WIN_SIZE}x{SSIM_WIN_SIZE} pixels, got {x.shape[1:3]}")


def _ssim_batched(x: np.ndarray, y: np.ndarray, data_range: float = 255.0) -> np.ndarray:
    """Mean SSIM of image pairs [B, H, W, C] x [B, H, W, C] -> [B].

    The same computation as ``skimage.metrics.structural_similarity(x, y, data_range=..., channel_axis=-1)`` with
    its defaults (7x7 uniform window, sample covariance, K1 0.01, K2 0.03, border of 3 cropped, mean over
    channels), stated over a batch in torch so that the N x N pairwise-identification matrix stays cheap;
    ``tests/test_metrics.py`` checks it equals skimage's.
    """
    _check_ssim_size(x)
    tx, ty = _as_nchw(x), _as_nchw(y)
    stats = [_window_means(v) for v in (tx, ty, tx * tx, ty * ty, tx * ty)]
    return _ssim_from_stats(*stats, data_range=data_range).numpy()


def ssim(generated, ground_truth) -> np.ndarray:
    """Raw SSIM of each generated image against its own ground truth: uint8 [N,H,W,3] x [N,H,W,3] -> [N]."""
    g, t = to_uint8_array(generated), to_uint8_array(ground_truth)
    if g.shape != t.shape:
        raise ValueError(f"generated {g.shape} and ground truth {t.shape} differ in shape")
    return _ssim_batched(g, t)


def _window_pixels(x: torch.Tensor) -> torch.Tensor:
    """The pixels of every full 7x7 window: ``[B, C, h, W] -> [C * L, B, 49]`` (L windows per channel, row-major)."""
    b, c = x.shape[:2]
    u = torch.nn.functional.unfold(x, SSIM_WIN_SIZE)  # [B, C * 49, L], channel-major
    return u.reshape(b, c, SSIM_WIN_SIZE ** 2, -1).permute(1, 3, 0, 2).reshape(-1, b, SSIM_WIN_SIZE ** 2)


def _per_window(u: torch.Tensor) -> torch.Tensor:
    """Window statistics ``[B, C, h, W]`` -> ``[C * L, B]``, in the order of :func:`_window_pixels`."""
    return u.reshape(u.shape[0], -1).T


def _scratch(flat: torch.Tensor, q: int, b: int, m: int, windows_inner: bool = False) -> torch.Tensor:
    """A ``[q, b, m]`` view of the front of a preallocated float64 buffer.

    The SSIM passes write into these instead of fresh tensors: a new 16 MB tensor per operation (mapped and
    page-faulted anew each time) cost more than the arithmetic. ``windows_inner`` lays the windows innermost, as
    torch lays out the product of the per-window means: the sum over windows then runs in the same order, so the
    numbers are those of fresh tensors, bit for bit (the SSIM map is computed in the plain layout, where every
    operation vectorises, and copied into that one before the sum).
    """
    front = flat[:q * b * m]
    return front.view(b, m, q).permute(2, 0, 1) if windows_inner else front.view(q, b, m)


def ssim_matrix(generated, ground_truth, budget: int = 2_000_000) -> np.ndarray:
    """SSIM of every generated image against every ground truth: [N, M] (row i, column j = gen i vs gt j).

    Only ``E[xy]`` depends on the pair; over all pairs it is one batched matrix product per window position
    (``[N, 49] @ [49, M]`` of the windows' pixels), and the SSIM formula is applied to ``budget``-element blocks
    with each image's own window statistics broadcast: ~10x faster than forming every pair's product image, with
    the same numbers (float64, exact sums of 8-bit products). ``tests/test_metrics.py`` checks it against skimage.
    The ground truths' side of a band of window rows is prepared once for every block of generated images, and the
    blocks reuse preallocated buffers (the sums still run over the same blocks in the same order).
    """
    g, t = to_uint8_array(generated), to_uint8_array(ground_truth)
    if g.shape[1:] != t.shape[1:]:
        raise ValueError(f"generated {g.shape[1:]} and ground-truth {t.shape[1:]} images differ in size")
    _check_ssim_size(g)
    tg, tt = _as_nchw(g), _as_nchw(t)
    n_pixels = SSIM_WIN_SIZE ** 2
    cov_norm = n_pixels / (n_pixels - 1)  # sample covariance, as skimage's default
    c1, c2 = (SSIM_K1 * 255.0) ** 2, (SSIM_K2 * 255.0) ** 2
    ug, ut = _window_means(tg), _window_means(tt)  # [B, C, h', w']
    vg, vt = cov_norm * (_window_means(tg * tg) - ug * ug), cov_norm * (_window_means(tt * tt) - ut * ut)
    c, h, w = ug.shape[1:]
    m = len(t)
    block = max(1, budget // (c * w * m))  # generated images per pass: at least one window row of every pair
    rows = max(1, budget // (c * w * m * block))  # window rows per pass
    size = c * w * min(rows, h) * min(block, len(g)) * m
    bufs = [torch.empty(size, dtype=torch.float64) for _ in range(5)]
    out = torch.zeros(len(g), m, dtype=torch.float64)
    for r0 in range(0, h, rows):
        r1 = min(r0 + rows, h)
        sl = (slice(None), slice(None), slice(r0, r1))
        truth = _window_pixels(tt[:, :, r0:r1 + SSIM_WIN_SIZE - 1]).transpose(1, 2)
        uy, vy = _per_window(ut[sl])[:, None, :], _per_window(vt[sl])[:, None, :]  # [Q, 1, M]
        uyy = uy * uy
        for i0 in range(0, len(g), block):
            i1 = min(i0 + block, len(g))
            shape = (c * w * (r1 - r0), i1 - i0, m)
            exy, lum, den, var = (_scratch(b, *shape) for b in bufs[:4])
            torch.bmm(_window_pixels(tg[i0:i1, :, r0:r1 + SSIM_WIN_SIZE - 1]), truth, out=exy).div_(n_pixels)
            ux, vx = _per_window(ug[i0:i1][sl])[:, :, None], _per_window(vg[i0:i1][sl])[:, :, None]  # [Q, b, 1]
            torch.mul(2 * ux, uy, out=lum).add_(c1)  # [Q, b, M]
            cs = exy.mul_(2 * cov_norm).sub_(lum, alpha=cov_norm).add_(cov_norm * c1 + c2)  # 2 cov + c2
            torch.add(ux * ux, uyy, out=den).add_(c1).mul_(torch.add(vx, vy, out=var).add_(c2))
            ssim_map = _scratch(bufs[4], *shape, windows_inner=True).copy_(lum.mul_(cs).div_(den))
            out[i0:i1] += ssim_map.sum(dim=0)
    return (out / (c * h * w)).numpy()  # mean over the map and the colour channels


def pcc_matrix(generated, ground_truth) -> np.ndarray:
    """Pearson correlation of flattened pixels, every generated image against every ground truth: [N, M].

    The paper's PCC: ``np.corrcoef(pred.reshape(-1), gt.reshape(-1))[0, 1]`` over all pixels and channels.
    A constant image has no defined correlation; it gets 0.
    """
    g, t = to_uint8_array(generated), to_uint8_array(ground_truth)
    if g.shape[1:] != t.shape[1:]:
        raise ValueError(f"generated {g.shape[1:]} and ground-truth {t.shape[1:]} images differ in size")
    g = g.reshape(len(g), -1).astype(np.float64)
    t = t.reshape(len(t), -1).astype(np.float64)
    g = g - g.mean(axis=1, keepdims=True)
    t = t - t.mean(axis=1, keepdims=True)
    gn, tn = np.linalg.norm(g, axis=1), np.linalg.norm(t, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (g @ t.T) / np.outer(gn, tn)
    return np.nan_to_num(r, nan=0.0, posinf=0.0, neginf=0.0)


def pcc(generated, ground_truth) -> np.ndarray:
    """Raw PCC of each generated image against its own ground truth: [N]."""
    return np.diagonal(pcc_matrix(generated, ground_truth)).copy()


__all__ = ["SSIM_WIN_SIZE", "SSIM_K1", "SSIM_K2", "to_uint8_array", "ssim", "ssim_matrix", "pcc", "pcc_matrix"]
