#!/usr/bin/env python3
"""Draws FieldMesh's app icons (three mesh nodes linked on a dark tile) as PNG files.

Pure standard library, so it runs anywhere: python3 tools/make_icons.py public/icons
"""
import math
import struct
import sys
import zlib
from pathlib import Path

BG = (15, 20, 25)
FG = (63, 182, 139)


def draw(size, safe):
    # Node positions in a unit square, scaled into the safe zone (maskable icons keep their
    # content within the central 80%).
    margin = (1 - safe) / 2
    nodes = [(0.5, 0.22), (0.22, 0.72), (0.78, 0.72)]
    pts = [((margin + x * safe) * size, (margin + y * safe) * size) for x, y in nodes]
    radius = 0.11 * safe * size
    width = 0.045 * safe * size
    rows = []
    for py in range(size):
        row = bytearray([0])
        for px in range(size):
            x, y = px + 0.5, py + 0.5
            ink = 0.0
            for cx, cy in pts:
                d = math.hypot(x - cx, y - cy)
                ink = max(ink, min(1.0, max(0.0, radius - d + 0.5)))
            for i in range(3):
                (ax, ay), (bx, by) = pts[i], pts[(i + 1) % 3]
                t = max(0.0, min(1.0, ((x - ax) * (bx - ax) + (y - ay) * (by - ay)) / ((bx - ax) ** 2 + (by - ay) ** 2)))
                d = math.hypot(x - (ax + t * (bx - ax)), y - (ay + t * (by - ay)))
                ink = max(ink, min(1.0, max(0.0, width / 2 - d + 0.5)))
            row += bytes(round(BG[c] + (FG[c] - BG[c]) * ink) for c in range(3))
        rows.append(bytes(row))
    raw = zlib.compress(b"".join(rows), 9)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def main():
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "public/icons")
    out.mkdir(parents=True, exist_ok=True)
    (out / "icon-192.png").write_bytes(draw(192, 0.9))
    (out / "icon-512.png").write_bytes(draw(512, 0.9))
    (out / "maskable-512.png").write_bytes(draw(512, 0.62))


if __name__ == "__main__":
    main()
