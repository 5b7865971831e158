"""The references' recipes (config/recipes/*.yaml, docs/recipes.md): each validates, dry-runs on a
full-size KITTI raw tree of empty files (or a minimal endoscopy folder) with the jobs its method
needs and no others; and the two training capabilities they need: the pure monocular teacher
(monodepth2 M) and SC-Depth v1's own loss."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from models import geometry as G
from models import losses as L
from models.networks.depth_net import DepthNet
from models.networks.pose_net import PoseNet
from models.training import kitti_objectives as ko
from tests.conftest import ROOT
from tests.dry_runs import SPLITS, drive_frames, drives_of, dry_run
from tests.models.test_networks import torchvision_state_dict
from tests.tiny_kitti import DATE, FRAMES, write_tiny_raw
from workflow_scripts.config.model import WorkflowConfig
from workflow_scripts.config.resolve import load_user_config, resolve
from workflow_scripts.kitti import raw
from workflow_scripts.kitti.dataset import KittiDataOptions, KittiRawDataset, intrinsics
from workflow_scripts.kitti.split_files import read_split
from workflow_scripts.training import kitti
from workflow_scripts.training.options import KittiCommon, KittiTeacher
from workflow_scripts.training.stage import StageInputs
from workflow_scripts.util.options import ConfigError, load_options

RECIPES = ROOT / "config" / "recipes"
KITTI_RECIPES = [
    "monodepth2_m", "monodepth2_s", "monodepth2_ms", "depth_hints", "epcdepth", "sc_depth_v1", "sgdepth",
]
def test_the_tree_is_full_size(kitti_full_tree):
    frames = drive_frames()
    assert len(frames) == 61 and 41_000 < sum(n + 1 for n in frames.values()) < 43_000
    for rel in ("eigen_zhou/train_files.txt", "eigen_full/train_files.txt", "eigen/test_files.txt"):
        folder, frame, side = (SPLITS / rel).read_text().splitlines()[-1].split()
        drive = kitti_full_tree / folder
        assert raw.image_path(drive, 2 if side == "l" else 3, int(frame) + 1).is_file()
        assert raw.velodyne_path(drive, int(frame)).is_file()


def _recipe_config(name: str, **roots: str) -> dict:
    user = load_user_config(RECIPES / f"{name}.yaml")
    for branch, root in roots.items():
        user.setdefault(branch, {})["root"] = root
    return resolve(user)


def test_the_recipes_are_there_and_say_what_they_reproduce_and_how_to_run():
    assert sorted(p.stem for p in RECIPES.glob("*.yaml")) == sorted([*KITTI_RECIPES, "liu2018"])
    for path in RECIPES.glob("*.yaml"):
        text = path.read_text()
        comments = itertools.takewhile(lambda line: line.startswith("#"), text.splitlines())
        header = " ".join(line.lstrip("#").strip() for line in comments)  # wrapped lines joined
        assert text.startswith("# ") and "Target:" in header and "Stages:" in header, path.name
        assert f"--configfile config/recipes/{path.name} my.yaml" in header, path.name
        assert "docs/recipes.md" in header, path.name
        if "weights: resources/imagenet/" in text:
            assert "Nothing is downloaded" in header, path.name


@pytest.mark.parametrize("name", [*KITTI_RECIPES, "liu2018"])
def test_every_recipe_validates_against_the_schema_and_the_options(name):
    from workflow_scripts.config.__main__ import main

    assert main(["check", str(RECIPES / f"{name}.yaml")]) == 0
    config = _recipe_config(name, kitti="/data/kitti_raw", endoscopy="/data/endo")
    load_options(WorkflowConfig, config)  # every section, with the checks of its dataclass


def _root_file(tmp_path: Path, branch: str, root: Path) -> Path:
    path = tmp_path / "my.yaml"
    path.write_text(yaml.safe_dump({branch: {"root": str(root)}}))
    return path


@pytest.mark.parametrize("name", KITTI_RECIPES)
def test_kitti_recipe_dry_runs_on_the_full_tree_with_only_its_stage(name, kitti_full_tree, tmp_path):
    counts = dry_run("results/kitti_eval.csv", tmp_path, RECIPES / f"{name}.yaml",
                     _root_file(tmp_path, "kitti", kitti_full_tree))
    config = _recipe_config(name, kitti=str(kitti_full_tree))
    kitti_cfg, teacher = config["kitti"], config["kitti"]["train"]["teacher"]
    standard = kitti_cfg["splits"]["standard"]
    train = drives_of(f"{standard}/train_files.txt", f"{standard}/val_files.txt")
    test = drives_of("eigen/test_files.txt", "eigen_benchmark/test_files.txt")
    assert counts["train_teacher"] == 1 and "train_student" not in counts and "finetune" not in counts
    assert counts["predict_depth"] == 1 and counts["evaluate_depth"] == 2  # teacher, constant
    assert counts["convert_to_jpeg"] == len(train | test)  # every stage reads the JPEGs
    if teacher["hints"]:  # Depth Hints, EPCDepth: hints of every training drive, at 320 x 1024
        assert counts["merge_depth_hints"] == len(train) == 33
        shards = sum(-(-(drive_frames()[d] + 2) // 1000) for d in train)  # kitti.depth_hints.shard_frames
        assert counts["precompute_depth_hints"] == shards > 33
        assert kitti_cfg["depth_hints"]["size"] == [320, 1024] and standard == "eigen_full"
    else:
        assert "precompute_depth_hints" not in counts
    section = load_options(KittiTeacher, teacher, "kitti.train.teacher")
    expected = {"monodepth2_m": (False, "monodepth2"), "sc_depth_v1": (False, "sc_depth"),
                "sgdepth": (False, "monodepth2")}
    assert (section.stereo, section.loss) == expected.get(name, (True, "monodepth2"))


def test_evaluated_stages_pick_the_trained_ones(kitti_full_tree, tmp_path):
    """A row of the student trains the teacher and the student, not the fine-tune; on the demo
    a recipe does not train the fine-tune's masking control either."""
    cfg = tmp_path / "student.yaml"
    cfg.write_text(yaml.safe_dump({"kitti": {"root": str(kitti_full_tree),
                                             "evaluate": {"stages": ["student"]}}}))
    (tmp_path / "a").mkdir()
    counts = dry_run("results/kitti_eval.csv", tmp_path / "a", cfg)
    assert counts["train_teacher"] == counts["train_student"] == counts["evaluate_depth"] == 1
    assert "finetune" not in counts and counts["merge_depth_hints"] == 32  # eigen_zhou drives
    (tmp_path / "b").mkdir()
    counts = dry_run("results/kitti_eval.csv", tmp_path / "b", RECIPES / "monodepth2_m.yaml")
    assert counts["train_teacher"] == 1 and counts["make_demo_kitti"] == 1
    assert not {"train_student", "finetune", "finetune_unmasked", "precompute_depth_hints"} & set(counts)


def test_demo_sgdepth_trains_the_masked_teacher_and_its_control_only(tmp_path):
    """config/demo_sgdepth.yaml: the monocular teacher masked and its unmasked control
    (train_unmasked, teacher_unmasked), the demo rendered with the slow van and the crossing cars;
    no student."""
    overlay = ROOT / "config" / "demo_sgdepth.yaml"
    counts = dry_run("results/kitti_eval.csv", tmp_path, overlay)
    assert counts["train_teacher"] == counts["train_unmasked"] == 1 and counts["make_demo_kitti"] == 1
    assert counts["predict_depth"] == 2 and counts["evaluate_depth"] == 3  # + constant
    assert not {"train_student", "finetune", "precompute_depth_hints"} & set(counts)
    config = resolve(load_user_config(overlay))
    assert config["demo"]["kitti"]["slow_van"] and config["demo"]["kitti"]["crossing"]
    teacher = load_options(KittiTeacher, config["kitti"]["train"]["teacher"], "kitti.train.teacher")
    assert not teacher.stereo and teacher.masking.enabled and teacher.masking.control
    assert teacher.segmentation.enabled


def test_endoscopy_recipe_dry_runs_on_a_minimal_folder(tmp_path):
    root = tmp_path / "endo"
    (root / "caseA").mkdir(parents=True)
    for name in ("caseA/00000001.jpg", "camera.yaml", "ct_surface.ply"):
        (root / name).write_bytes(b"")
    counts = dry_run("results/endo_eval.csv", tmp_path, RECIPES / "liu2018.yaml",
                     _root_file(tmp_path, "endoscopy", root))
    assert counts["train_teacher"] == counts["train_student"] == counts["finetune"] == 1
    assert counts["predict_endo_depth"] == 1 and counts["predict_endo_constant"] == 1  # finetune, constant
    assert counts["register_ct"] == 2 and "make_demo_endoscopy" not in counts


# ------------------------------------------------------------------ the pure monocular teacher
@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"stereo": False}, "hints need stereo"),
        ({"stereo": False, "hints": False}, "stereo: false needs temporal frames"),
        ({"stereo": False, "hints": False, "frame_ids": [0, -1, 1], "self_distillation": True},
         "self_distillation uses the stereo warp"),
        ({"frame_ids": [0, -1, 1], "hints": False, "loss": "sc_depth"}, "loss sc_depth is SC-Depth"),
        ({"pose_weights": "resnet18.pth"}, "pose_weights are the pose network's"),
    ],
)
def test_teacher_combinations_that_cannot_train_are_named(section, message):
    with pytest.raises(ConfigError, match=f"kitti.train.teacher: {message}"):
        load_options(KittiTeacher, section, "kitti.train.teacher")


MONO = KittiTeacher(length=2, lr_step=0, frame_ids=(0, -1, 1), stereo=False, hints=False)
COMMON = KittiCommon(size=(64, 64), batch_size=2, workers=0, unit="steps", checkpoint_every=2)


@pytest.fixture
def mono_raw(tmp_path) -> dict:
    """A drive with the LEFT camera only (a stereo item cannot be built) and a split of the
    frames with both temporal neighbours."""
    return write_tiny_raw(tmp_path, split_frames=range(1, FRAMES - 1))


def _plan(section: KittiTeacher):
    return kitti.stage_plan("teacher", COMMON, section, None)


def test_pure_monocular_teacher_has_no_stereo_frame_and_a_finite_differentiable_loss(mono_raw):
    nets, objective, stereo = kitti.build_stage(_plan(MONO), None)
    assert stereo is False and set(nets) == {"depth", "pose"}
    assert isinstance(objective, ko.TeacherObjective)
    assert objective.opts.photo.stereo is False and not objective.opts.hints
    items = read_split(mono_raw["split"])
    opts = KittiDataOptions(height=64, width=64, frame_ids=MONO.frame_ids, stereo=stereo)
    data = KittiRawDataset(mono_raw["root"], items, intrinsics(mono_raw["root"], {DATE}), opts, seed=0)
    batch = {k: torch.stack([data[i][k] for i in range(2)]) for k in ("color", "color_aug", "K", "stereo_T")}
    assert batch["color"].shape == (2, 3, 3, 64, 64)  # target and its two neighbours, nothing else
    loss, logs = objective(batch, nets)
    assert torch.isfinite(loss) and logs["hint"] == 0.0
    loss.backward()
    for name in ("depth", "pose"):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in nets[name].parameters()), name


def test_teacher_without_hints_optimises_monodepth2s_minimum(monkeypatch):
    """monodepth2 (and Depth Hints without hints) average the per-pixel minimum over all pixels;
    Depth Hints' hint selection, which leaves the identity pixels out, is not used."""
    used = []
    real = L.min_reprojection_loss
    monkeypatch.setattr(L, "min_reprojection_loss", lambda *a, **k: used.append(1) or real(*a, **k))
    monkeypatch.setattr(L, "depth_hint_loss", lambda *a, **k: pytest.fail("hint selection without hints"))
    _, objective, _ = kitti.build_stage(_plan(MONO), None)
    torch.manual_seed(0)
    color = torch.rand(1, 3, 3, 64, 64)
    K = torch.tensor([[[40.0, 0, 32], [0, 40.0, 32], [0, 0, 1]]])
    nets = nn.ModuleDict({"depth": DepthNet(18), "pose": PoseNet(18)})
    loss, _ = objective({"color": color, "color_aug": color, "K": K}, nets)
    assert torch.isfinite(loss) and len(used) == 4  # one per scale


def test_a_pure_monocular_teacher_trains_end_to_end(mono_raw):
    """rule train_teacher's assembly on a drive without the right camera: items without the
    stereo frame, a pose network saved with the model."""
    inputs = StageInputs(split=mono_raw["split"], raw_root=mono_raw["root"], image_root=mono_raw["root"])
    out = mono_raw["tmp"] / "teacher" / "model.pt"
    info = kitti.run("teacher", COMMON, MONO, inputs, out, seed=0, threads=1)
    assert info["steps"] == 2 and out.is_file()
    assert "pose" in torch.load(out, weights_only=True)["nets"]


def test_the_pose_encoder_starts_from_its_own_imagenet_weights(tmp_path):
    """pose_weights (monodepth2 §6.4.2): the pose encoder loads a torchvision-layout state dict
    with conv1 repeated for the frame pair and halved; the depth encoder keeps network.weights
    (here none), and without pose_weights the pose encoder is random."""
    torch.manual_seed(0)
    sd = torchvision_state_dict(18)
    torch.save(sd, tmp_path / "r18.pth")
    section = dataclasses.replace(MONO, pose_weights=str(tmp_path / "r18.pth"))
    nets, _, _ = kitti.build_stage(_plan(section), None)
    pose = nets["pose"].encoder.encoder
    torch.testing.assert_close(pose.conv1.weight, torch.cat([sd["conv1.weight"]] * 2, 1) / 2)
    torch.testing.assert_close(pose.layer4[1].conv2.weight, sd["layer4.1.conv2.weight"])
    assert not torch.equal(nets["depth"].encoder.encoder.layer4[1].conv2.weight, sd["layer4.1.conv2.weight"])
    plain, _, _ = kitti.build_stage(_plan(MONO), None)
    assert not torch.equal(plain["pose"].encoder.encoder.layer4[1].conv2.weight, sd["layer4.1.conv2.weight"])


@pytest.mark.parametrize("name", ["monodepth2_m", "monodepth2_ms", "sc_depth_v1", "sgdepth"])
def test_recipes_with_a_pose_network_start_both_encoders_from_imagenet(name):
    teacher = _recipe_config(name, kitti="/data/kitti_raw")["kitti"]["train"]["teacher"]
    assert any(teacher["frame_ids"][1:])
    assert teacher["pose_weights"] == teacher["network"]["weights"] == "resources/imagenet/resnet18.pth"


# ------------------------------------------------------------------ SC-Depth v1's own loss
SC = KittiTeacher(length=2, lr_step=0, frame_ids=(0, -1, 1), stereo=False, hints=False, loss="sc_depth",
                  geometry_weight=0.3, smoothness=0.1, pose_rotation="euler")


def test_sc_depth_loss_is_selected_with_its_weights():
    nets, objective, stereo = kitti.build_stage(_plan(SC), None)
    assert isinstance(objective, ko.ScDepthObjective) and stereo is False and set(nets) == {"depth", "pose"}
    assert (objective.opts.geometry_weight, objective.opts.photo.smoothness) == (0.3, 0.1)
    assert objective.opts.photo.frame_ids == (0, -1, 1) and not objective.opts.photo.stereo
    _, plain, _ = kitti.build_stage(_plan(MONO), None)
    assert isinstance(plain, ko.TeacherObjective)


def test_sc_depth_objective_is_both_directions_min_optimised_plus_weighted_terms():
    """The loss equals models.losses' SC-Depth terms of (target -> neighbour) and (neighbour ->
    target), each with its own pose-network pass, min-optimised; + 0.3 geometry + 0.1 smoothness
    of the target's depth. Gradients reach both networks."""
    torch.manual_seed(0)
    b, h, w = 2, 64, 96
    color = torch.rand(b, 2, 3, h, w)
    K = torch.tensor([[50.0, 0, w / 2], [0, 50.0, h / 2], [0, 0, 1]]).expand(b, 3, 3).clone()
    nets = nn.ModuleDict({"depth": DepthNet(18, "sc_depth"), "pose": PoseNet(18, rotation="euler")})
    photo_opts = ko.PhotoOptions(frame_ids=(0, 1), stereo=False, smoothness=0.1)
    objective = ko.ScDepthObjective(ko.ScDepthOptions(photo=photo_opts, geometry_weight=0.3))
    loss, logs = objective({"color": color, "color_aug": color, "K": K}, nets)
    with torch.no_grad():
        disp = nets["depth"](color.flatten(0, 1))[0]
        depth = G.disp_to_depth(disp, 0.1, 100.0)[1].view(b, 2, 1, h, w)
        pose = nets["pose"]
        terms = [L.sc_pairwise_terms(color[:, t], color[:, r], depth[:, t], depth[:, r], K,
                                     pose.to_matrix(pose(color[:, t], color[:, r])))
                 for t, r in ((0, 1), (1, 0))]
        photo, geo = L.sc_depth_losses(terms)
        smooth = L.edge_aware_smoothness(depth[:, 0], color[:, 0])
    assert logs["photometric"] == pytest.approx(float(photo), rel=1e-5)
    assert logs["geometry"] == pytest.approx(float(geo), rel=1e-5) and float(geo) > 0
    assert loss.item() == pytest.approx(float(photo + 0.3 * geo + 0.1 * smooth), rel=1e-5)
    one_way, _ = L.sc_depth_losses(terms[:1])
    assert float(one_way) != pytest.approx(float(photo), rel=1e-3)  # the backward pair counts
    loss.backward()
    for name in ("depth", "pose"):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in nets[name].parameters()), name


def test_sc_depth_teacher_trains_end_to_end(mono_raw):
    inputs = StageInputs(split=mono_raw["split"], raw_root=mono_raw["root"], image_root=mono_raw["root"])
    out = mono_raw["tmp"] / "sc" / "model.pt"
    kitti.run("teacher", COMMON, SC, inputs, out, seed=0, threads=1)
    history = (out.parent / "history.csv").read_text().splitlines()
    assert "geometry" in history[0] and len(history) == 3  # header + 2 steps
