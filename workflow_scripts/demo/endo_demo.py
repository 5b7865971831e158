"""Write the endoscopy demo: videos, camera.yaml, the CT surface and ground truth.

Output folder (one cavity per patient)::

    <patient>/<seq>.mp4       distorted endoscope video (mp4v), frames 0..N-1
    <patient>/ct_surface.ply  the patient's cavity surface, binary PLY, millimetres, vertex normals
    camera.yaml               K, distortion, fps, aperture (see workflow_scripts.endo.camera)
    gt/<seq>/poses.npz        cam_from_world (N, 4, 4) in mm, frame (N,), times (N,) s
    gt/<seq>/depth/<frame:08d>.png   camera z-depth of the distorted frame, uint16 = mm * 500
    gt/<seq>/info.json        units, depth scale, camera path parameters
"""

from __future__ import annotations

import json
import logging
from dataclasses import MISSING, dataclass
from pathlib import Path

import cv2
import numpy as np
from plyfile import PlyData, PlyElement

from workflow_scripts.demo.endo_render import CavityRenderer
from workflow_scripts.demo.endo_scene import Cavity, CavityConfig, build_cavity, camera_path, mucosa_texture
from workflow_scripts.demo.textures import MipTextures
from workflow_scripts.endo.camera import EndoCamera
from workflow_scripts.util import atomic_dir
from workflow_scripts.util.options import option
from workflow_scripts.util.pool import map_in_processes

log = logging.getLogger(__name__)
DEPTH_PNG_SCALE = 500.0  # uint16 units per mm (max 131 mm, 2 micrometre steps)


@dataclass(frozen=True, kw_only=True)
class DemoSequence:
    """One demo sequence: a camera moving along the cavity's centre line."""

    name: str = option(MISSING, "Sequence name.", pattern="^[A-Za-z0-9_-]+$")
    patient: str = option(
        "p1", "Patient (its own cavity and CT, <root>/<patient>/): p1, p2, ...", pattern="^p[1-9][0-9]*$"
    )
    frames: int = option(120, "Frames.", minimum=2)
    start: float = option(6.0, "Where the camera starts along the centre line (mm).", minimum=0)
    step: float = option(0.3, "Motion per frame along the centre line (mm).", exclusiveMinimum=0)


def _demo_sequences() -> tuple[DemoSequence, ...]:
    return (
        DemoSequence(name="seq01", patient="p1", frames=120, start=6.0, step=0.30),
        DemoSequence(name="seq02", patient="p2", frames=90, start=20.0, step=0.35),
    )


@dataclass(frozen=True, kw_only=True)
class EndoDemoConfig:
    """Synthetic endoscopy (rule make_demo_endoscopy), used when endoscopy.root is empty: a camera
    with a point light moving through a textured tube-like cavity, seen through a distorting lens
    with a circular field of view. Each patient has a cavity (and CT) of its own, drawn from the
    same cavity settings; its sequences travel through it."""

    root: str = option(
        "resources/demo/endoscopy",
        "Where the demo videos, camera.yaml, the patients' CTs and ground truth are written.",
    )
    image_size: tuple[int, int] = option((480, 640), "Video frame size [height, width].")
    fps: float = option(30.0, "Frame rate.", exclusiveMinimum=0)
    focal: float = option(300.0, "Pinhole focal length (pixels).", exclusiveMinimum=0)
    distortion: tuple[float, float, float, float, float] = option(
        (-0.28, 0.08, 0.0, 0.0, 0.0), "OpenCV distortion [k1, k2, p1, p2, k3] of the lens."
    )
    aperture: float = option(
        0.97,
        "Radius of the circular field of view, as a fraction of half the image height.",
        exclusiveMinimum=0,
        maximum=1.5,
    )
    cavity: CavityConfig = option(
        factory=CavityConfig,
        doc="The cavity: a tube with a curved centre line, varying radius and ring folds (mm).",
    )
    sequences: tuple[DemoSequence, ...] = option(factory=_demo_sequences, doc="The sequences.", minItems=1)
    light: float = option(1.0, "Point light at the camera: radiance at 10 mm.", exclusiveMinimum=0)
    specular: float = option(0.1, "Specular strength (0 = matte).", minimum=0)

    def camera(self) -> EndoCamera:
        h, w = self.image_size
        cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
        K = np.array([[self.focal, 0, cx], [0, self.focal, cy], [0, 0, 1.0]])
        return EndoCamera(
            K=K,
            dist=np.array(self.distortion, float),
            size=(h, w),
            fps=self.fps,
            aperture=(cx, cy, self.aperture * h / 2.0),
        )


def write_ct_ply(path: Path, verts: np.ndarray, tris: np.ndarray, normals: np.ndarray) -> None:
    """Binary little-endian PLY: vertex x, y, z, nx, ny, nz (float32, mm) + triangle faces."""
    vdata = np.empty(len(verts), dtype=[(k, "f4") for k in ("x", "y", "z", "nx", "ny", "nz")])
    for i, k in enumerate("xyz"):
        vdata[k] = verts[:, i]
        vdata["n" + k] = normals[:, i]
    fdata = np.empty(len(tris), dtype=[("vertex_indices", "i4", (3,))])
    fdata["vertex_indices"] = tris
    ply = PlyData(
        [PlyElement.describe(vdata, "vertex"), PlyElement.describe(fdata, "face")],
        text=False,
        byte_order="<",
        comments=["units: millimetres", "demo cavity surface (synthetic CT)"],
    )
    ply.write(str(path))


_STATE: dict = {}


def _render(task: tuple[int, int]) -> tuple[int, int, np.ndarray]:
    """Render frame ``i`` of sequence ``q``, write its depth PNG, return the 8-bit BGR frame."""
    q, i = task
    st = _STATE
    patient = st["cfg"].sequences[q].patient
    if patient not in st["renderers"]:  # Embree scenes are built after the fork, never shared
        cavity, texture = st["scenes"][patient]
        st["renderers"][patient] = CavityRenderer(
            cavity, texture, st["cfg"].light, st["cfg"].specular, threads=st["threads"]
        )
    rgb, depth = st["renderers"][patient].render(st["poses"][q][i], st["camera"])
    d16 = np.round(depth * DEPTH_PNG_SCALE)
    d16[d16 > 65535] = 0
    cv2.imwrite(
        str(st["gt_dirs"][q] / "depth" / f"{i:08d}.png"),
        d16.astype(np.uint16),
        [cv2.IMWRITE_PNG_COMPRESSION, 1],
    )
    bgr = cv2.cvtColor(np.round(rgb * 255).astype(np.uint8), cv2.COLOR_RGB2BGR)
    return q, i, bgr


def generate(out_dir: str | Path, cfg: EndoDemoConfig, seed: int, workers: int = 1) -> dict:
    """Generate the demo cavity and every sequence under ``out_dir`` (atomically).

    Returns:
        summary with vertex / face counts and frames per sequence.
    """
    scenes: dict[str, tuple[Cavity, MipTextures]] = {}
    for patient in sorted({s.patient for s in cfg.sequences}, key=lambda p: int(p[1:])):
        number = int(patient[1:])  # p1 draws as the one-cavity demo did
        rng = np.random.default_rng([seed, 7] if number == 1 else [seed, 7, 100 + number])
        cavity = build_cavity(rng, cfg.cavity)
        scenes[patient] = (cavity, mucosa_texture(rng))
    camera = cfg.camera()
    poses = [
        camera_path(np.random.default_rng([seed, 7, q]), scenes[s.patient][0], s.frames, s.start, s.step)
        for q, s in enumerate(cfg.sequences)
    ]
    summary: dict = {"sequences": {}, "patients": {}}
    with atomic_dir(out_dir) as tmp:
        camera.save(tmp / "camera.yaml")
        for patient, (cavity, _) in scenes.items():
            verts, tris, normals = cavity.ct_mesh()
            (tmp / patient).mkdir()
            write_ct_ply(tmp / patient / "ct_surface.ply", verts, tris, normals)
            summary["patients"][patient] = {"vertices": len(verts), "faces": len(tris)}
        gt_dirs = [tmp / "gt" / s.name for s in cfg.sequences]
        for q, s in enumerate(cfg.sequences):
            (gt_dirs[q] / "depth").mkdir(parents=True)
            times = np.arange(s.frames) / cfg.fps
            np.savez(
                gt_dirs[q] / "poses.npz",
                cam_from_world=np.linalg.inv(poses[q]),
                frame=np.arange(s.frames),
                times=times,
            )
            info = {
                "units": "mm",
                "depth_png_scale": DEPTH_PNG_SCALE,
                "depth": "camera z of the distorted frame",
                "frames": s.frames,
                "start_mm": s.start,
                "step_mm": s.step,
                "fps": cfg.fps,
            }
            (gt_dirs[q] / "info.json").write_text(json.dumps(info, indent=2) + "\n")
        _STATE.clear()
        _STATE.update(
            scenes=scenes,
            renderers={},
            cfg=cfg,
            camera=camera,
            poses=poses,
            gt_dirs=gt_dirs,
            threads=1 if workers > 1 else 0,
        )
        tasks = [(q, i) for q, s in enumerate(cfg.sequences) for i in range(s.frames)]
        writers = [
            cv2.VideoWriter(
                str(tmp / s.patient / f"{s.name}.mp4"),
                cv2.VideoWriter.fourcc(*"mp4v"),
                cfg.fps,
                (camera.size[1], camera.size[0]),
            )
            for s in cfg.sequences
        ]
        try:
            # ordered: the frames go to the writers in order
            results = (
                map_in_processes(_render, tasks, workers, context="fork")
                if workers > 1
                else map(_render, tasks)
            )
            for n, (q, _, bgr) in enumerate(results, 1):
                writers[q].write(bgr)
                if n % 30 == 0 or n == len(tasks):
                    log.info("rendered %d/%d frames", n, len(tasks))
        finally:
            for w in writers:
                w.release()
            _STATE.clear()
        for s in cfg.sequences:
            summary["sequences"][s.name] = s.frames
    return summary
