"""KITTI raw formats (calibration, Velodyne scans, timestamps) and the data preparation."""
