"""The PyTorch library of the workflow: networks, camera geometry and losses of the references.

* :mod:`models.networks`: ResNet encoder, monodepth2 depth decoder, pose network, FC-DenseNet57,
  the endoscopy teacher U-Net, EPCDepth's RSU decoder.
* :mod:`models.geometry`: back-projection, projection, warping, flow, pose conversions.
* :mod:`models.losses`: photometric, depth-hint, SC-Depth, endoscopy, distillation and EPCDepth
  losses (pure functions).

Nothing here reads configuration files or knows about Snakemake; formulas cite
``../shared/reference/seed_methods.md``.
"""
