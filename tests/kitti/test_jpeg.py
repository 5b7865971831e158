"""PNG -> JPEG conversion: quality 92 quantisation tables and 4:2:0 chroma subsampling."""

from __future__ import annotations

import cv2
import numpy as np

from workflow_scripts.kitti import raw
from workflow_scripts.kitti.jpeg import convert_drive

# libjpeg's standard luminance table (ITU T.81 Annex K), in natural (row-major) order
STD_LUMA = np.array(
    [
        16,
        11,
        10,
        16,
        24,
        40,
        51,
        61,
        12,
        12,
        14,
        19,
        26,
        58,
        60,
        55,
        14,
        13,
        16,
        24,
        40,
        57,
        69,
        56,
        14,
        17,
        22,
        29,
        51,
        87,
        80,
        62,
        18,
        22,
        37,
        56,
        68,
        109,
        103,
        77,
        24,
        35,
        55,
        64,
        81,
        104,
        113,
        92,
        49,
        64,
        78,
        87,
        103,
        121,
        120,
        101,
        72,
        92,
        95,
        98,
        112,
        100,
        103,
        99,
    ]
)
ZIGZAG = [
    0,
    1,
    8,
    16,
    9,
    2,
    3,
    10,
    17,
    24,
    32,
    25,
    18,
    11,
    4,
    5,
    12,
    19,
    26,
    33,
    40,
    48,
    41,
    34,
    27,
    20,
    13,
    6,
    7,
    14,
    21,
    28,
    35,
    42,
    49,
    56,
    57,
    50,
    43,
    36,
    29,
    22,
    15,
    23,
    30,
    37,
    44,
    51,
    58,
    59,
    52,
    45,
    38,
    31,
    39,
    46,
    53,
    60,
    61,
    54,
    47,
    55,
    62,
    63,
]


def _markers(data: bytes) -> dict[int, list[bytes]]:
    """JPEG marker segments before the scan: marker -> payloads."""
    out: dict[int, list[bytes]] = {}
    i = 2
    while i < len(data) and data[i] == 0xFF and data[i + 1] != 0xDA:
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        out.setdefault(data[i + 1], []).append(data[i + 4 : i + 2 + length])
        i += 2 + length
    return out


def test_drive_conversion_quality_and_subsampling(kitti_demo_small, tmp_path):
    src = raw.drive_dir(kitti_demo_small["root"], "2011_01_02", "0003")
    out = tmp_path / "jpeg" / "2011_01_02" / src.name
    assert convert_drive(src, out, quality=92, workers=2) == 10
    jpg = raw.image_path(out, 3, 4, "jpg")
    seg = _markers(jpg.read_bytes())
    sof = seg[0xC0][0]  # baseline: precision, height, width, components, then (id, HV, table) x 3
    h, w = kitti_demo_small["config"].dates["2011_01_02"]
    assert int.from_bytes(sof[1:3], "big") == h and int.from_bytes(sof[3:5], "big") == w
    assert [sof[6 + 3 * c + 1] for c in range(3)] == [0x22, 0x11, 0x11]  # 4:2:0 (2x2,1x1,1x1)
    dqt = seg[0xDB][0]
    assert dqt[0] == 0  # table 0, 8-bit
    scale = 200 - 2 * 92  # libjpeg's quality scaling for quality >= 50
    expected = np.clip((STD_LUMA * scale + 50) // 100, 1, 255)
    np.testing.assert_array_equal(np.frombuffer(dqt[1:65], np.uint8)[np.argsort(ZIGZAG)], expected)
    png = cv2.imread(str(raw.image_path(src, 3, 4)))
    decoded = cv2.imread(str(jpg))
    psnr = 10 * np.log10(255**2 / np.mean((png.astype(float) - decoded) ** 2))
    assert psnr > 32
