#!/usr/bin/python3
"""Writes tests/fixtures/metrics/metrics_reference.safetensors: small seeded videos and the PSNR, SSIM, temporal
flicker and warping error that numpy and OpenCV's Python bindings give for them, written from the definitions in
docs/metrics.md. tests/test_eval.cpp reads the file and compares lightforce's own metrics (eval/metrics.cpp) with
these numbers, so the test's expectations never come from the code it tests.

    /usr/bin/python3 tools/make_metric_fixtures.py     # Debian: python3-numpy, python3-opencv

Each measure is computed twice here in two unrelated ways, and the script refuses to write the fixture unless the
two agree (PSNR: numpy vs cv2.PSNR; SSIM: a direct 11x11 window over every position vs the separable cv2.filter2D
recipe; warping error: numpy's own bilinear sampling vs cv2.remap). Tensors in the file:

- frames_<name>: u8 [T, H, W, 3] RGB videos (pairs for PSNR/SSIM are the same index of two videos);
- psnr_<a>_<b>, ssim_<a>_<b>: f64 [T] per-frame values of video a against video b;
- flicker_<name>, mean_abs_diff_<name>: f64 [1];
- warping_<name>: f64 [2]: numpy bilinear sampling (the exact definition), cv2.remap (what eval/metrics.cpp calls:
  it quantises sample positions to 1/32 pixel, so the two differ slightly; the test bounds each difference).
"""
import pathlib

import cv2
import numpy as np

from numpy_safetensors import write_safetensors

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "metrics" / "metrics_reference.safetensors"


def texture(rng, width, height, frames, dx_per_frame, dy_per_frame):
    """A smooth colour texture (sums of oblique sinusoids, periods 12-40 px) translated per frame: real motion."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    waves = []
    for _ in range(3):
        channel = []
        for _ in range(4):
            period, angle = 12 + 28 * rng.random(), 2 * np.pi * rng.random()
            channel.append((np.cos(angle) * 2 * np.pi / period, np.sin(angle) * 2 * np.pi / period,
                            2 * np.pi * rng.random(), 20 + 15 * rng.random()))
        waves.append(channel)
    video = np.empty((frames, height, width, 3), np.uint8)
    for t in range(frames):
        for c, channel in enumerate(waves):
            value = np.full((height, width), 128.0)
            for fx, fy, phase, amplitude in channel:
                value += amplitude * np.sin(fx * (xs - dx_per_frame * t) + fy * (ys - dy_per_frame * t) + phase)
            video[t, :, :, c] = np.clip(np.rint(value), 0, 255).astype(np.uint8)
    return video


def noisy(rng, video, amplitude):
    noise = rng.integers(-amplitude, amplitude + 1, size=video.shape)
    return np.clip(video.astype(np.int64) + noise, 0, 255).astype(np.uint8)


def psnr_numpy(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0 ** 2 / mse)


def luma(frame):
    rgb = frame.astype(np.float64)
    return 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]


def gaussian_window():
    offsets = np.arange(11) - 5
    g = np.exp(-offsets ** 2 / (2 * 1.5 ** 2))
    g /= g.sum()
    return np.outer(g, g)


C1, C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2


def ssim_direct(a, b):
    """Every 11x11 window of the valid region, variances as weighted squared deviations from the window mean."""
    window = gaussian_window()
    x = np.lib.stride_tricks.sliding_window_view(luma(a), (11, 11))
    y = np.lib.stride_tricks.sliding_window_view(luma(b), (11, 11))
    mu_x = np.einsum("ijkl,kl->ij", x, window)
    mu_y = np.einsum("ijkl,kl->ij", y, window)
    dx, dy = x - mu_x[..., None, None], y - mu_y[..., None, None]
    var_x = np.einsum("ijkl,kl->ij", dx * dx, window)
    var_y = np.einsum("ijkl,kl->ij", dy * dy, window)
    cov = np.einsum("ijkl,kl->ij", dx * dy, window)
    ssim_map = (2 * mu_x * mu_y + C1) * (2 * cov + C2) / ((mu_x ** 2 + mu_y ** 2 + C1) * (var_x + var_y + C2))
    return ssim_map.mean()


def ssim_opencv(a, b):
    """The usual OpenCV recipe (filtered moments, E[x^2] - mu^2), cropped to the valid region."""
    g = cv2.getGaussianKernel(11, 1.5, cv2.CV_64F)
    x, y = luma(a), luma(b)

    def blur(image):
        return cv2.sepFilter2D(image, cv2.CV_64F, g, g, borderType=cv2.BORDER_REFLECT)[5:-5, 5:-5]

    mu_x, mu_y = blur(x), blur(y)
    var_x, var_y, cov = blur(x * x) - mu_x ** 2, blur(y * y) - mu_y ** 2, blur(x * y) - mu_x * mu_y
    ssim_map = (2 * mu_x * mu_y + C1) * (2 * cov + C2) / ((mu_x ** 2 + mu_y ** 2 + C1) * (var_x + var_y + C2))
    return ssim_map.mean()


def mean_abs_difference(video):
    v = video.astype(np.float64)
    return np.mean([np.mean(np.abs(v[t + 1] - v[t])) for t in range(len(v) - 1)])


def farneback(current, following):
    gray = [cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in (current, following)]
    return cv2.calcOpticalFlowFarneback(gray[0], gray[1], None, 0.5, 3, 15, 3, 5, 1.2, 0)


def bilinear(image, map_x, map_y):
    """image[map_y, map_x] with bilinear weights; neighbours beyond the last row/column repeat it."""
    height, width = image.shape[:2]
    x0 = np.floor(map_x).astype(np.int64)
    y0 = np.floor(map_y).astype(np.int64)
    fx, fy = (map_x - x0)[..., None], (map_y - y0)[..., None]
    x0c, x1c = np.clip(x0, 0, width - 1), np.clip(x0 + 1, 0, width - 1)
    y0c, y1c = np.clip(y0, 0, height - 1), np.clip(y0 + 1, 0, height - 1)
    top = image[y0c, x0c] * (1 - fx) + image[y0c, x1c] * fx
    bottom = image[y1c, x0c] * (1 - fx) + image[y1c, x1c] * fx
    return top * (1 - fy) + bottom * fy


def warping_error(video, use_remap):
    """Mean over pairs of mean |f_t - warp(f_t+1)| / 255 over the pixels whose flow target is inside the frame."""
    errors = []
    for t in range(len(video) - 1):
        flow = farneback(video[t], video[t + 1])
        height, width = flow.shape[:2]
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        map_x, map_y = xs + flow[..., 0], ys + flow[..., 1]  # float32, as the C++ builds its maps
        following = video[t + 1].astype(np.float32)
        if use_remap:
            warped = cv2.remap(following, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        else:
            warped = bilinear(following.astype(np.float64), map_x.astype(np.float64), map_y.astype(np.float64))
        inside = (map_x >= 0) & (map_x <= width - 1) & (map_y >= 0) & (map_y <= height - 1)
        if not inside.any():
            continue
        difference = np.abs(video[t].astype(np.float64) - warped.astype(np.float64))[inside]
        errors.append(difference.sum() / (inside.sum() * 3 * 255.0))
    return float(np.mean(errors))


def main():
    rng = np.random.default_rng(20261207)
    videos = {
        # Uniform random bytes: SSIM near 0 against an unrelated video; odd sizes (not multiples of anything).
        "random_a": rng.integers(0, 256, size=(3, 23, 37, 3), dtype=np.uint8),
        "random_b": rng.integers(0, 256, size=(3, 23, 37, 3), dtype=np.uint8),
        # A textured video and noisy copies of it: mid-range SSIM and PSNR, the regime real comparisons live in.
        "texture": texture(rng, 40, 32, 3, 2.0, 1.0),
        # Exactly the SSIM window: a single map value.
        "tiny_a": rng.integers(0, 256, size=(2, 11, 11, 3), dtype=np.uint8),
    }
    videos["texture_noise4"] = noisy(rng, videos["texture"], 4)
    videos["texture_noise40"] = noisy(rng, videos["texture"], 40)
    videos["tiny_b"] = noisy(rng, videos["tiny_a"], 30)
    # Motion for the flow: a translated texture (small warping error) and a video whose frames are unrelated.
    videos["moving"] = texture(rng, 56, 40, 3, 3.0, -1.5)
    videos["shuffled"] = rng.integers(0, 256, size=(3, 40, 56, 3), dtype=np.uint8)

    tensors = {f"frames_{name}": video for name, video in videos.items()}
    pairs = [("random_a", "random_b"), ("texture_noise4", "texture"), ("texture_noise40", "texture"),
             ("tiny_b", "tiny_a")]
    for a, b in pairs:
        psnr = np.array([psnr_numpy(x, y) for x, y in zip(videos[a], videos[b])])
        psnr_cv = np.array([cv2.PSNR(np.ascontiguousarray(x), np.ascontiguousarray(y)) for x, y in zip(videos[a], videos[b])])
        assert np.max(np.abs(psnr - psnr_cv)) < 1e-9, (a, b, psnr, psnr_cv)
        ssim = np.array([ssim_direct(x, y) for x, y in zip(videos[a], videos[b])])
        ssim_cv = np.array([ssim_opencv(x, y) for x, y in zip(videos[a], videos[b])])
        assert np.max(np.abs(ssim - ssim_cv)) < 1e-9, (a, b, ssim, ssim_cv)
        tensors[f"psnr_{a}_{b}"] = psnr
        tensors[f"ssim_{a}_{b}"] = ssim
        print(f"{a} vs {b}: psnr {psnr.round(4)}, ssim {ssim.round(6)} "
              f"(numpy vs OpenCV: psnr {np.max(np.abs(psnr - psnr_cv)):.1e}, ssim {np.max(np.abs(ssim - ssim_cv)):.1e})")
    for name in ("texture", "texture_noise40", "random_a", "moving"):
        difference = mean_abs_difference(videos[name])
        tensors[f"mean_abs_diff_{name}"] = np.array([difference])
        tensors[f"flicker_{name}"] = np.array([1 - difference / 255])
        print(f"{name}: mean |frame difference| {difference:.6f}, flicker {1 - difference / 255:.8f}")
    for name in ("moving", "shuffled", "texture"):
        exact, remap = warping_error(videos[name], False), warping_error(videos[name], True)
        tensors[f"warping_{name}"] = np.array([exact, remap])
        print(f"{name}: warping error {exact:.8f} (numpy bilinear), {remap:.8f} (cv2.remap), "
              f"relative difference {abs(exact - remap) / remap:.2e}")
    write_safetensors(OUT, tensors, {"generator": "tools/make_metric_fixtures.py", "numpy": np.__version__,
                                     "opencv": cv2.__version__, "seed": "20261207"})
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
