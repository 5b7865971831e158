"""Split lists in monodepth2's format: one line ``<date>/<drive folder> <frame> <l|r>``.

Example: ``2011_09_26/2011_09_26_drive_0002_sync 0000000069 l``. Frames are written with 10
digits (eigen_benchmark's shipped list has unpadded numbers; both are read). The standard
lists of the references ship in ``workflow_scripts/kitti/splits/`` (see NOTICE.md there);
``eigen_full/all_files.txt`` (Depth Hints) is ``train_files.txt`` followed by
``val_files.txt`` and is derived, not stored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from workflow_scripts.kitti.raw import SIDE_TO_CAM, image_path
from workflow_scripts.util import InputDataError, write_text_atomic

__all__ = [
    "SplitLine",
    "read_split",
    "write_split",
    "standard_split",
    "STANDARD_DIR",
    "TEST_SPLITS",
    "check_frames_exist",
    "drive_folder",
    "list_frames",
]

STANDARD_DIR = Path(__file__).resolve().parent / "splits"
TEST_SPLITS = ("eigen", "eigen_benchmark")
_FOLDER = re.compile(r"^(\d{4}_\d{2}_\d{2})/(\1_drive_\d{4}_sync)$")


@dataclass(frozen=True, order=True)
class SplitLine:
    """One line of a split list: drive folder ``<date>/<drive>``, frame number, side."""

    folder: str
    frame: int
    side: str

    @property
    def date(self) -> str:
        return self.folder.split("/")[0]

    @property
    def drive(self) -> str:
        return self.folder.split("/")[1]

    @property
    def cam(self) -> int:
        return SIDE_TO_CAM[self.side]

    def text(self) -> str:
        return f"{self.folder} {self.frame:010d} {self.side}"


def drive_folder(date: str, drive: str) -> str:
    """``<date>/<date>_drive_<id>_sync`` from a date and a drive folder name or 4-digit id."""
    name = drive if drive.endswith("_sync") else f"{date}_drive_{drive}_sync"
    return f"{date}/{name}"


def read_split(path: str | Path) -> list[SplitLine]:
    """Read a split list; malformed lines raise :class:`InputDataError` naming the line."""
    path = Path(path)
    if not path.is_file():
        raise InputDataError(path, "split list not found", "check the split name in config.yaml (kitti)")
    lines = []
    for n, text in enumerate(path.read_text().splitlines(), 1):
        if not text.strip():
            continue
        parts = text.split()
        if (
            len(parts) != 3
            or not _FOLDER.match(parts[0])
            or not parts[1].isdigit()
            or parts[2] not in SIDE_TO_CAM
        ):
            raise InputDataError(
                path,
                f"line {n} is not '<date>/<date>_drive_<id>_sync <frame> <l|r>': {text[:80]!r}",
                "fix or regenerate the split list",
            )
        lines.append(SplitLine(parts[0], int(parts[1]), parts[2]))
    return lines


def write_split(path: str | Path, lines: list[SplitLine]) -> None:
    """Write a split list atomically (10-digit frames)."""
    write_text_atomic(path, "".join(line.text() + "\n" for line in lines))


def standard_split(name: str, part: str) -> list[SplitLine]:
    """A shipped list: ``name`` in eigen, eigen_benchmark, eigen_zhou, eigen_full; ``part`` in
    test, train, val, all (``all`` = train + val, Depth Hints' list for precomputing hints)."""
    if part == "all":
        return standard_split(name, "train") + standard_split(name, "val")
    return read_split(STANDARD_DIR / name / f"{part}_files.txt")


def list_frames(drive_path: Path, cam: int, ext: str) -> list[int]:
    """Sorted frame numbers of ``image_0{cam}/data/*.{ext}`` of a drive."""
    folder = drive_path / f"image_0{cam}" / "data"
    if not folder.is_dir():
        raise InputDataError(
            folder,
            "image folder not found",
            "check kitti.root (and kitti.image_ext) and that the drive was extracted",
        )
    frames = sorted(int(p.stem) for p in folder.glob(f"*.{ext}") if p.stem.isdigit())
    if not frames:
        others = sorted({p.suffix.lstrip(".") for p in folder.iterdir() if p.stem.isdigit() and p.suffix})
        if others:
            raise InputDataError(
                folder,
                f"holds no .{ext} frames but .{others[0]} ones",
                f"set kitti.image_ext: {others[0]} (the file type of the raw tree's images)",
            )
        raise InputDataError(folder, "holds no frames", "extract the drive's images again")
    return frames


def check_frames_exist(
    lines: list[SplitLine],
    image_root: Path,
    ext: str,
    list_path: Path,
    offsets: tuple[int, ...] = (0,),
    sides: tuple[str, ...] | None = None,
) -> None:
    """Raise :class:`InputDataError` naming the split list, its line and the missing image
    for the first line whose frame (or frame + offset, e.g. the temporal neighbours -1, +1)
    has no image for its side (or for every side in ``sides``)."""
    seen: set[tuple[str, int, int]] = set()
    for n, line in enumerate(lines, 1):
        for side in sides or (line.side,):
            for off in offsets:
                key = (line.folder, SIDE_TO_CAM[side], line.frame + off)
                if key in seen:
                    continue
                path = image_path(image_root / line.folder, key[1], key[2], ext)
                if not path.is_file():
                    raise InputDataError(
                        list_path,
                        f"line {n} ({line.text()}) needs {path}, which does not exist",
                        "download/extract that drive into kitti.root, or use a split "
                        "that only names frames you have",
                    )
                seen.add(key)
