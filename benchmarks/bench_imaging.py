"""Time the fake's imaging against bare Pillow on a ~1 MP JPEG.

Baseline: decode the JPEG and encode an RGBA PNG of its size with Pillow's
defaults. Each operation row decodes the same JPEG bytes and calls the imaging
function (which encodes its own PNG). Reports the median of ``--runs`` runs, after
one warm-up, and the ratio to the baseline; the cases run in interleaved rounds.

    python benchmarks/bench_imaging.py [--runs 15] [--json results.json]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import PIL
from PIL import Image, ImageChops, ImageDraw, ImageFilter

# Run against this checkout even when the package is not installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mock_server import imaging

SIZE = (1216, 864)  # 1,050,624 pixels, a 3:2-ish photo
BASELINE = "baseline: decode JPEG + encode RGBA PNG (defaults)"


def make_jpeg() -> bytes:
    """A deterministic photo-like JPEG: graded backdrop, two shapes, fine grain."""
    image = Image.linear_gradient("L").resize(SIZE).convert("RGB")
    image = Image.blend(Image.new("RGB", SIZE, (205, 210, 220)), image, 0.15)
    draw = ImageDraw.Draw(image)
    draw.ellipse((330, 150, 880, 780), fill=(170, 60, 40))
    draw.rounded_rectangle((520, 80, 700, 260), radius=40, fill=(60, 50, 45))
    grain = Image.frombytes("L", SIZE, random.Random(0).randbytes(SIZE[0] * SIZE[1]))
    grain = grain.filter(ImageFilter.GaussianBlur(0.7)).point(lambda value: value // 8)
    image = Image.merge("RGB", [ImageChops.add(band, grain, 1, -16) for band in image.split()])
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def decode(data: bytes) -> Image.Image:
    """Decode and load, as the server does before calling the imaging functions."""
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def baseline(data: bytes) -> bytes:
    """Bare Pillow: decode the JPEG, encode an RGBA PNG of its size with default settings."""
    buffer = io.BytesIO()
    decode(data).convert("RGBA").save(buffer, "PNG")
    return buffer.getvalue()


def replace(data: bytes, **overrides: Any) -> bytes:
    """Decode and replace the background (1 MP output, text prompt, base mode unless overridden)."""
    arguments: dict[str, Any] = {
        "prompt": "a red car in a parking lot at night",
        "ref_images": [],
        "mode": "base",
        "seed": 42,
        "original_quality": False,
        "force_background_detection": False,
        "negative_prompt": None,
        "enhance_ref_images": False,
    }
    arguments.update(overrides)
    return imaging.replace_background(decode(data), **arguments)


def baseline_at(data: bytes, factor: int) -> bytes:
    """Bare Pillow for a larger result: decode the JPEG, encode an RGB PNG ``factor`` times its sides (defaults)."""
    image = decode(data)
    buffer = io.BytesIO()
    image.resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST).save(buffer, "PNG")
    return buffer.getvalue()


def centre_mask(data: bytes) -> Image.Image:
    """A binary mask of the photo's size: a white rectangle over its middle third."""
    width, height = decode(data).size
    mask = Image.new("L", (width, height), 0)
    ImageDraw.Draw(mask).rectangle((width // 3, height // 3, 2 * width // 3, 2 * height // 3), fill=255)
    return mask


def edit_cases(data: bytes) -> dict[str, tuple[Callable[[], object], str]]:
    """The other edits, each with the baseline that encodes a result of its size."""
    from mock_server import edits, resizing, restyling

    mask = centre_mask(data)
    width, height = decode(data).size
    canvas = resizing.expand_layout(
        (width, height),
        aspect_ratio="1:1",
        canvas_size=(1000, 1000),
        original_image_size=None,
        original_image_location=None,
    )
    same, double = BASELINE, "baseline x2: decode JPEG + encode a PNG twice the sides (defaults)"
    return {
        double: (lambda: baseline_at(data, 2), double),
        "erase_foreground": (lambda: edits.erase_foreground(decode(data), preserve_alpha=True), same),
        "blur_background (scale 5)": (lambda: edits.blur_background(decode(data), scale=5, preserve_alpha=True), same),
        "crop_foreground": (
            lambda: edits.crop_foreground(
                decode(data), padding=10, force_background_detection=False, preserve_alpha=True
            ),
            same,
        ),
        "erase (mask)": (lambda: edits.erase(decode(data), mask, mask_type="manual", preserve_alpha=True), same),
        "gen_fill (mask)": (
            lambda: edits.gen_fill(
                decode(data), mask, prompt="a vase", negative_prompt=None, seed=1, preserve_alpha=True
            ),
            same,
        ),
        "expand (1:1)": (
            lambda: resizing.expand(
                decode(data), canvas, prompt="a room", negative_prompt=None, seed=1, preserve_alpha=True
            ),
            same,
        ),
        "restyle (and every instruction edit)": (
            lambda: restyling.seeded_edit(decode(data), "restyle", {"style": "anime"}, 1),
            same,
        ),
        "edit (FIBO, masked)": (
            lambda: restyling.seeded_edit(decode(data), "edit", {"instruction": "make it blue"}, 1, mask),
            same,
        ),
        "increase_resolution (x2)": (
            lambda: resizing.increase_resolution(decode(data), desired_increase=2, preserve_alpha=True),
            double,
        ),
        "enhance (x2)": (lambda: resizing.enhance(decode(data), seed=1, preserve_alpha=True), double),
    }


def at_default_png_level(call: Callable[[], bytes]) -> bytes:
    """Run ``call`` with imaging encoding at Pillow's default PNG level, to show the processing cost alone."""
    chosen = imaging.PNG_COMPRESS_LEVEL
    imaging.PNG_COMPRESS_LEVEL = 6
    try:
        return call()
    finally:
        imaging.PNG_COMPRESS_LEVEL = chosen


def seconds(call: Callable[[], object]) -> float:
    """Wall time of one call."""
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def machine() -> dict[str, object]:
    """What the numbers were measured on."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        models = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if "model name" in line]
        cpu = models[0] if models else cpu
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "pillow": PIL.__version__,
        "system": platform.platform(),
    }


@dataclass
class Row:
    """One timed case."""

    case: str
    ms: float
    ratio: float = 1.0


def measure(data: bytes, runs: int, edits: bool = True) -> list[Row]:
    """Time every case on ``data``; ratios are to the baseline that encodes a result of the case's size."""
    reference = Image.new("RGB", (1600, 1000), (90, 130, 170))
    cases: dict[str, Callable[[], object]] = {
        BASELINE: lambda: baseline(data),
        "remove_background": lambda: imaging.remove_background(decode(data)),
        "remove_background, PNG at Pillow's default level 6": lambda: at_default_png_level(
            lambda: imaging.remove_background(decode(data))
        ),
        "replace_background (text, base)": lambda: replace(data),
        "replace_background (text, high_control)": lambda: replace(data, mode="high_control"),
        "replace_background (hex colour)": lambda: replace(data, prompt="#FF5733"),
        "replace_background (ref image, enhanced)": lambda: replace(
            data, prompt=None, ref_images=[reference], enhance_ref_images=True
        ),
    }
    baselines = dict.fromkeys(cases, BASELINE)
    if edits:
        for name, (call, against) in edit_cases(data).items():
            cases[name], baselines[name] = call, against
    for call in cases.values():
        call()  # warm-up
    # Interleaved rounds, so that a change in machine load hits every case alike.
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, call in cases.items():
            times[name].append(seconds(call))
    medians = {name: 1000 * statistics.median(samples) for name, samples in times.items()}
    return [Row(name, ms, ms / medians[baselines[name]]) for name, ms in medians.items()]


def table(rows: list[Row]) -> str:
    """The results as a Markdown table."""
    lines = ["| case | ms (median) | x baseline |", "|---|---:|---:|"]
    lines += [f"| {row.case} | {row.ms:.1f} | {row.ratio:.2f} |" for row in rows]
    return "\n".join(lines)


def main() -> None:
    """Parse arguments, measure, print the table and optionally write JSON."""
    parser = argparse.ArgumentParser(description="Time the fake's imaging against bare Pillow on a ~1 MP JPEG.")
    parser.add_argument("--runs", type=int, default=15, help="timed runs per case (median reported)")
    parser.add_argument("--no-edits", action="store_true", help="only remove_background and replace_background")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results as JSON to PATH")
    arguments = parser.parse_args()
    data = make_jpeg()
    width, height = decode(data).size
    rows = measure(data, arguments.runs, edits=not arguments.no_edits)
    info = machine()
    where = f"{info['cpu']}, {info['cores']} cores"
    print(f"{width}x{height} JPEG ({len(data)} bytes), median of {arguments.runs} runs; {where}")
    print(table(rows))
    if arguments.json:
        image = {"width": width, "height": height, "jpeg_bytes": len(data)}
        report = {"image": image, "runs": arguments.runs, "machine": info, "results": [asdict(row) for row in rows]}
        arguments.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
