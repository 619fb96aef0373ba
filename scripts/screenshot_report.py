"""Take a screenshot of an autoevolve ``report.html`` in headless Chromium, to check that it renders.

Usage::

    python scripts/screenshot_report.py .autoevolve/runs/<run-id>/report.html
    python scripts/screenshot_report.py REPORT.html --out shot.png --width 1280 --height 2000
    python scripts/screenshot_report.py REPORT.html --open-details --height 4000 --crop 1800:3400

The browser is ``--browser``, else ``$CHROMIUM``, else the first of chromium,
chromium-browser, google-chrome and google-chrome-stable on the PATH (on Debian:
``apt-get install chromium``). It runs headless with networking, sync and updates off and a
throw-away profile, so the report is rendered exactly as it reads offline.

``--open-details`` renders a copy of the report with every scenario's ``<details>`` open
(to see the trajectories side by side); ``--crop TOP:BOTTOM`` keeps only those pixel rows,
so one section can be looked at closely. The PNG is decoded here (pure Python, zlib only)
and the script prints its size and colour counts: how many pixels carry the incumbent's
and the candidate's chart colours. It exits 1 when the browser wrote nothing or a blank
page (a single colour), 2 when no browser is found.
"""

from __future__ import annotations

import argparse
import operator
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from collections import Counter
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHART_COLORS = {"incumbent": (0x00, 0x72, 0xB2), "candidate": (0xE6, 0x9F, 0x00)}
"""The two roles' colours in report.html's charts (pytest_autoevolve.report.charts.COLORS)."""
_WRAP = bytes(i & 255 for i in range(512))

Image = tuple[int, int, int, list[bytes]]
"""Width, height, bytes per pixel, and the unfiltered rows of a decoded PNG."""


def find_browser(explicit: str | None = None) -> str | None:
    """The Chromium executable to use, or None."""
    if explicit:
        return explicit
    if os.environ.get("CHROMIUM"):
        return os.environ["CHROMIUM"]
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return None


def screenshot(html: Path, png: Path, browser: str, width: int = 1280, height: int = 2000) -> Path:
    """Render ``html`` headless at ``width`` x ``height`` and write the screenshot to ``png``."""
    png = png.resolve()
    png.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="autoevolve-chromium-") as profile:
        command = [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            f"--screenshot={png}",
            f"--window-size={width},{height}",
            html.resolve().as_uri(),
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if not png.is_file():
        raise RuntimeError(f"{browser} wrote no screenshot (exit {done.returncode}): {done.stderr[-2000:]}")
    return png


def decode_png(data: bytes) -> Image:
    """Decode an 8-bit, non-interlaced PNG (what Chromium writes) into rows of pixels."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG file")
    pos, chunks, header = 8, [], None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            chunks.append(body)
        pos += 12 + length
    if header is None:
        raise ValueError("PNG without a header")
    width, height, depth, color, _, _, interlace = header
    if depth != 8 or interlace or color not in (0, 2, 4, 6):
        raise ValueError(f"unsupported PNG: depth {depth}, colour type {color}, interlace {interlace}")
    bpp = {0: 1, 2: 3, 4: 2, 6: 4}[color]
    raw, stride = zlib.decompress(b"".join(chunks)), width * bpp
    rows, previous = [], bytes(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], raw[start + 1 : start + 1 + stride]
        if kind == 0:
            row = line
        elif kind == 2:
            row = bytes(map(_WRAP.__getitem__, map(operator.add, line, previous)))
        else:
            row = _unfilter(kind, bytearray(line), previous, bpp)
        rows.append(row)
        previous = row
    return width, height, bpp, rows


def _unfilter(kind: int, row: bytearray, previous: bytes, bpp: int) -> bytes:
    for i in range(len(row)):
        left = row[i - bpp] if i >= bpp else 0
        if kind == 1:
            row[i] = (row[i] + left) & 255
        elif kind == 3:
            row[i] = (row[i] + ((left + previous[i]) >> 1)) & 255
        else:  # Paeth
            up, corner = previous[i], previous[i - bpp] if i >= bpp else 0
            guess = left + up - corner
            near_left, near_up, near_corner = abs(guess - left), abs(guess - up), abs(guess - corner)
            if near_left <= near_up and near_left <= near_corner:
                row[i] = (row[i] + left) & 255
            else:
                row[i] = (row[i] + (up if near_up <= near_corner else corner)) & 255
    return bytes(row)


def encode_png(image: Image) -> bytes:
    """Encode decoded rows again (no filtering), e.g. after cropping."""
    width, height, bpp, rows = image
    color = {1: 0, 2: 4, 3: 2, 4: 6}[bpp]

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, color, 0, 0, 0)
    pixels = zlib.compress(b"".join(b"\0" + row for row in rows), 6)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def pixel_stats(image: Image, tolerance: int = 6) -> dict[str, int]:
    """Distinct colours, and pixels within ``tolerance`` of each role's chart colour."""
    width, _, bpp, rows = image
    counts: Counter[bytes] = Counter()
    for row in rows:
        counts.update(row[i : i + 3] for i in range(0, width * bpp, bpp))
    stats = {"colours": len(counts)}
    for role, target in CHART_COLORS.items():
        stats[role] = sum(
            n for c, n in counts.items() if all(abs(a - b) <= tolerance for a, b in zip(c, target, strict=True))
        )
    return stats


def main(argv: list[str] | None = None) -> int:
    """Screenshot a report, print what the picture holds; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="a report.html")
    parser.add_argument("--out", type=Path, help="the PNG to write (default: next to the report, .png)")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=2000)
    parser.add_argument("--browser", help="Chromium or Chrome executable")
    parser.add_argument("--open-details", action="store_true", help="render with every <details> open")
    parser.add_argument("--crop", metavar="TOP:BOTTOM", help="keep only these pixel rows")
    args = parser.parse_args(argv)
    browser = find_browser(args.browser)
    if browser is None:
        print(f"no Chromium found (tried {', '.join(BROWSERS)}); pass --browser or set CHROMIUM", file=sys.stderr)
        return 2
    out = args.out or args.report.with_suffix(".png")
    with tempfile.TemporaryDirectory(prefix="autoevolve-report-") as folder:
        page = args.report
        if args.open_details:
            page = Path(folder) / args.report.name
            text = args.report.read_text(encoding="utf-8")
            page.write_text(re.sub(r"<details(?![^>]*\bopen\b)", "<details open", text), encoding="utf-8")
        screenshot(page, out, browser, args.width, args.height)
    image = decode_png(out.read_bytes())
    if args.crop:
        top, bottom = (int(x) for x in args.crop.split(":"))
        image = (image[0], len(image[3][top:bottom]), image[2], image[3][top:bottom])
        out.write_bytes(encode_png(image))
    stats = pixel_stats(image)
    size = f"{image[0]}x{image[1]}, {out.stat().st_size} bytes"
    roles = f"incumbent-coloured pixels {stats['incumbent']}, candidate-coloured pixels {stats['candidate']}"
    print(f"{out}: {size}, {stats['colours']} colours, {roles}")
    if stats["colours"] <= 1:
        print(f"{out} is blank", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
