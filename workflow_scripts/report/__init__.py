"""Figures of the Snakemake report (``snakemake --report report.html``), drawn with matplotlib.

Modules:
    figure         Agg backend, atomic PNG output, PLY reading.
    depth          colour-mapped depth / disparity next to the input frames.
    curves         training curves from history.csv.
    metrics        bar charts of the evaluation table (results/kitti_eval.csv).
    sfm            SfM summary (trajectory + sparse points, counts) per sequence and as a table.
    registration   residual histograms and an orthographic view of a registered cloud on the CT.
"""
