"""Figures of the Snakemake report (``snakemake --report report.html``), drawn with matplotlib.

Modules:
    figure         Agg backend, atomic PNG output, PLY reading.
    depth          colour-mapped depth / disparity next to the input frames.
    kitti_depth    KITTI test frames: ground truth, every stage's depth as evaluated, error map;
                   per-frame abs_rel box plots (means = results/kitti_eval.csv's).
    curves         training curves from history.csv.
    metrics        bar charts of the evaluation tables (results/kitti_eval.csv, results/endo_eval.csv).
    tables         an evaluation table as a self-contained HTML page (shown inline by the report).
    directions     label, unit and better direction of every column of the evaluation tables.
    sfm            SfM summary (trajectory + sparse points, counts) per sequence and as a table.
    endo_depth     endoscopy depth maps with the SfM sparse points on them, one colour scale.
    registration   residual reader, statistics and histograms (flagging ambiguous / wrong poses).
    registration_view  a registered cloud on the whole CT (orthographic views, fixed residual
                   scale), beside the cloud under the true (demo) and runner-up poses.
"""
