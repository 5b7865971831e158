"""Rule predict_depth: disparities of a test split, (N, H, W) float32 in monodepth2's layout."""

import logging
from pathlib import Path

import numpy as np
import torch

from models.data.kitti import KittiDataOptions, KittiRawDataset, read_split
from models.inference import predict_batches
from models.training.engine import pick_device
from models.training.stage import load_model
from workflow_scripts.training.kitti import intrinsics
from workflow_scripts.util import atomic_file

log = logging.getLogger("predict_depth")


def main(model_path: Path, split: Path, image_root: Path, raw_root: Path, image_ext: str, out: Path,
         post_process: bool, threads: int, batch_size: int = 8) -> np.ndarray:
    torch.set_num_threads(max(1, threads))
    net, meta = load_model(model_path)
    items = read_split(split)
    opts = KittiDataOptions(meta["height"], meta["width"], augment=False, image_ext=image_ext, cache=False)
    data = KittiRawDataset(image_root, items, intrinsics(raw_root, {i.date for i in items}), opts)
    batches = (torch.stack([data[i]["color"][0] for i in range(s, min(s + batch_size, len(data)))])
               for s in range(0, len(data), batch_size))
    disps = predict_batches(net, batches, pick_device(), min_depth=meta["min_depth"],
                            max_depth=meta["max_depth"], post_process=post_process,
                            kind=meta.get("depth_kind", "disp"))
    with atomic_file(out) as tmp:
        np.save(tmp, disps)
    log.info("%s: %d disparities %s from %s", out, len(disps), disps.shape[1:], model_path)
    return disps


if __name__ == "__main__":
    from workflow_scripts.util.smk import setup_logging

    smk = snakemake  # type: ignore[name-defined]  # noqa: F821 - injected by Snakemake
    setup_logging(smk.log[0])
    main(Path(smk.input.model), Path(smk.input.split), Path(smk.params.image_root), Path(smk.params.raw_root),
         smk.params.image_ext, Path(smk.output[0]), smk.params.post_process, smk.threads)
