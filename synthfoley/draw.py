"""Tiny raster primitives that paint in place on one (H, W, 3) uint8 frame.

Coordinates are floats in pixels (x right, y down); shapes are clipped to the frame.
"""
from __future__ import annotations

import numpy as np

Color = tuple[int, int, int]


def rect(img: np.ndarray, x0: float, y0: float, x1: float, y1: float, color: Color) -> None:
    """Fill the pixels whose centres lie in [x0, x1) x [y0, y1)."""
    h, w = img.shape[:2]
    c0, c1 = max(0, int(np.ceil(x0 - 0.5))), min(w, int(np.ceil(x1 - 0.5)))
    r0, r1 = max(0, int(np.ceil(y0 - 0.5))), min(h, int(np.ceil(y1 - 0.5)))
    if c0 < c1 and r0 < r1:
        img[r0:r1, c0:c1] = color


def ellipse(img: np.ndarray, cx: float, cy: float, rx: float, ry: float, color: Color) -> None:
    """Fill an axis-aligned ellipse centred at (cx, cy)."""
    h, w = img.shape[:2]
    r0, r1 = max(0, int(cy - ry - 1)), min(h, int(cy + ry + 2))
    c0, c1 = max(0, int(cx - rx - 1)), min(w, int(cx + rx + 2))
    if r0 >= r1 or c0 >= c1:
        return
    yy = (np.arange(r0, r1)[:, None] + 0.5 - cy) / max(ry, 1e-3)
    xx = (np.arange(c0, c1)[None, :] + 0.5 - cx) / max(rx, 1e-3)
    inside = xx * xx + yy * yy <= 1.0
    img[r0:r1, c0:c1][inside] = color


def ellipses(img: np.ndarray, params: np.ndarray, color: Color) -> None:
    """Fill many ellipses at once; params is (M, 4) rows of cx, cy, rx, ry."""
    cx, cy, rx, ry = (np.asarray(params, np.float64).reshape(-1, 4).T[:, :, None, None])  # (M, 1, 1) each
    yy = np.arange(img.shape[0])[:, None] + 0.5  # (H, 1)
    xx = np.arange(img.shape[1])[None, :] + 0.5  # (1, W)
    inside = (((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1.0).any(axis=0)  # (H, W)
    img[inside] = color


def disc(img: np.ndarray, cx: float, cy: float, r: float, color: Color) -> None:
    ellipse(img, cx, cy, r, r, color)


def line(img: np.ndarray, x0: float, y0: float, x1: float, y1: float, color: Color,
         width: float = 1.0) -> None:
    """Draw a segment as a run of squares `width` pixels wide."""
    h, w = img.shape[:2]
    n = int(max(abs(x1 - x0), abs(y1 - y0)) * 2) + 2
    s = np.arange(n) / (n - 1)
    half = width / 2.0
    off = np.arange(-half + 0.5, half, 1.0)  # (K,) offsets of the squares
    cols = np.floor(x0 + (x1 - x0) * s + off[:, None, None]).astype(int)  # (K, 1, n)
    rows = np.floor(y0 + (y1 - y0) * s + off[None, :, None]).astype(int)  # (1, K, n)
    _plot(img, cols + 0 * rows, rows + 0 * cols, color)


def lines(img: np.ndarray, segs: np.ndarray, color: Color) -> None:
    """Draw many 1-pixel segments at once; segs is (M, 4) rows of x0, y0, x1, y1."""
    segs = np.asarray(segs, np.float64).reshape(-1, 4)
    if len(segs) == 0:
        return
    n = int(np.abs(segs[:, 2:] - segs[:, :2]).max() * 2) + 2
    s = np.arange(n) / (n - 1)  # (n,)
    cols = np.floor(segs[:, :1] + (segs[:, 2:3] - segs[:, :1]) * s).astype(int)  # (M, n)
    rows = np.floor(segs[:, 1:2] + (segs[:, 3:4] - segs[:, 1:2]) * s).astype(int)
    _plot(img, cols, rows, color)


def _plot(img: np.ndarray, cols: np.ndarray, rows: np.ndarray, color: Color) -> None:
    h, w = img.shape[:2]
    ok = (cols >= 0) & (cols < w) & (rows >= 0) & (rows < h)
    img[rows[ok], cols[ok]] = color


def blend(img: np.ndarray, color: Color, alpha: float) -> None:
    """Mix the whole frame towards `color` by `alpha` (0 keeps the frame)."""
    mixed = img.astype(np.float32) * (1.0 - alpha) + np.asarray(color, np.float32) * alpha
    img[...] = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)


def layout(size: int) -> tuple[list[tuple[int, int, int, int]], int]:
    """The frame's 2x2 object cells as (x0, y0, x1, y1) and the first row of the bottom strip.

    The top 7/8 of the frame holds four cells (32x28 at 64 px); the bottom strip is where the
    ambience hints (grass, crowd) live.
    """
    strip = size - 2 * int(round(size * 0.4375))
    ch, cw = (size - strip) // 2, size // 2
    cells = [(c * cw, r * ch, (c + 1) * cw, (r + 1) * ch) for r in range(2) for c in range(2)]
    return cells, 2 * ch
