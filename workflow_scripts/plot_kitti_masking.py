"""Rule plot_kitti_masking: SGDepth's masking on test frames with moving cars. Per frame: the
input, the masked stage's segmentation (Cityscapes colours), its disparity and its unmasked
control's disparity (the same colour range per frame)."""

import logging
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from workflow_scripts.kitti.cityscapes import MOVABLE_TRAIN_IDS
from workflow_scripts.kitti.raw import image_path
from workflow_scripts.kitti.semantic_eval import load_test_labels
from workflow_scripts.kitti.split_files import read_split
from workflow_scripts.report.depth import colorize, read_rgb, robust_range
from workflow_scripts.report.figure import save_png

log = logging.getLogger("plot_kitti_masking")
# Cityscapes' colours of the 19 trainIds (cityscapesScripts labels.py)
PALETTE = np.array([(128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
                    (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
                    (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100),
                    (0, 80, 100), (0, 0, 230), (119, 11, 32)], np.uint8)


def moving_car_frames(labels: list[np.ndarray], n: int) -> list[int]:
    """The ``n`` test frames with the most movable-class pixels in their labels, in split order."""
    counts = np.array([np.isin(lab, MOVABLE_TRAIN_IDS).sum() for lab in labels])
    return sorted(np.argsort(-counts, kind="stable")[:n].tolist())


def main(split_path: Path, labels_path: Path, seg_path: Path, masked_path: Path, unmasked_path: Path,
         image_root: Path, image_ext: str, out: Path, n_frames: int, stage: str) -> list[int]:
    """``stage``: the masked stage (teacher or finetune), for the titles."""
    lines = read_split(split_path)
    rows = moving_car_frames(load_test_labels(labels_path), n_frames)
    seg = np.load(seg_path, allow_pickle=False)
    masked, unmasked = (np.load(p, allow_pickle=False) for p in (masked_path, unmasked_path))
    fig, axes = plt.subplots(len(rows), 4, figsize=(16, 1.5 * len(rows) + 0.6), squeeze=False)
    titles = ("input", f"segmentation ({stage}, masked)", f"disparity: {stage}, masked",
              f"disparity: {stage}_unmasked (its control)")
    for ax, title in zip(axes[0], titles, strict=True):
        ax.set_title(title, fontsize=9)
    for r, ax_row in zip(rows, axes, strict=True):
        ln = lines[r]
        image = read_rgb(image_path(image_root / ln.folder, ln.cam, ln.frame, image_ext))
        vmin, vmax = robust_range(np.concatenate([masked[r].ravel(), unmasked[r].ravel()]))
        panels = (image, PALETTE[np.minimum(seg[r], len(PALETTE) - 1)],
                  colorize(masked[r], vmin, vmax), colorize(unmasked[r], vmin, vmax))
        for ax, panel in zip(ax_row, panels, strict=True):
            ax.imshow(panel, aspect="auto", interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
        ax_row[0].set_ylabel(f"{ln.drive.removesuffix('_sync')}\nframe {ln.frame}", fontsize=7)
    fig.suptitle("SGDepth's semantic masking: test frames with the most moving-class pixels", fontsize=10)
    fig.tight_layout()
    save_png(fig, out)
    log.info("%s: frames %s", out, rows)
    return rows


if __name__ == "__main__":
    from workflow_scripts.util.smk import setup_logging

    smk = snakemake  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
    setup_logging(smk.log[0])
    main(Path(smk.input.split), Path(smk.input.labels), Path(smk.input.seg), Path(smk.input.masked),
         Path(smk.input.unmasked), Path(smk.params.image_root), smk.params.image_ext, Path(smk.output[0]),
         smk.params.frames, smk.params.stage)
