"""SGDepth in the training stages: the masking's schedule and state, its effect on the fine-tune
loss, the joint segmentation loss, and a stateful objective resumed from a checkpoint."""

from __future__ import annotations

import math
import re

import pytest
import torch
from torch import nn

from models import losses as L
from models.networks.depth_net import DepthNet
from models.networks.pose_net import PoseNet
from models.training import kitti_objectives as ko
from models.training.engine import Schedule, train
from models.training.semantic import JointSegmentation, MaskingSchedule, MovingMasker


def test_masking_schedule_of_a_stage():
    s = MaskingSchedule.for_stage(100, start=0.75, periods=5, linear=True, percent=0.1)
    assert (s.start_step, s.period_steps) == (75, 5)
    assert s.period(74) is None and s.period(75) == 0 and s.period(80) == 1 and s.period(99) == 4
    # SGDepth's linear schedule: after period k of 5, the percentile 1 - (k + 1) / 4
    assert [s.percentile(k) for k in range(4)] == [0.75, 0.5, 0.25, 0.0]
    fixed = MaskingSchedule.for_stage(100, 0.75, 5, linear=False, percent=0.1)
    assert fixed.percentile(2) == 0.1
    short = MaskingSchedule.for_stage(3, 0.75, 5, True, 0.1)  # a stage shorter than the periods
    assert short.start_step == 0 and short.period(2) == 2


def _segs(car_rows_target: slice, car_rows_source: slice) -> tuple[torch.Tensor, torch.Tensor]:
    t = torch.full((1, 4, 6), 0, dtype=torch.long)
    s = t.clone()
    t[0, car_rows_target, 1:4] = 13
    s[0, car_rows_source, 1:4] = 13
    return t, s


def test_masker_thresholds_follow_the_periods_and_survive_a_resume():
    sched = MaskingSchedule(start_step=2, period_steps=2, periods=3, linear=True)
    m = MovingMasker(sched)
    ious = iter([0.2, 0.6, 0.9, 0.4])
    for step in range(8):
        m.start_step(step)
        if m.active:  # log one IoU per step, as the objective's mask() does
            m.masking.iou_log.append(next(ious, 0.5))
    # period 0 (steps 2, 3) logged 0.2, 0.6 -> percentile 1 - 1/2 = 0.5 -> 0.4;
    # period 1 (steps 4, 5) logged 0.9, 0.4 -> percentile 0 -> 0.4
    assert m.current == 2 and m.masking.threshold == pytest.approx(0.4)
    state = m.state_dict()
    again = MovingMasker(sched)
    again.load_state_dict(state)
    assert again.current == 2 and again.masking.threshold == pytest.approx(0.4)
    assert again.masking.iou_log == m.masking.iou_log


def test_masker_masks_movable_pixels_of_images_under_the_threshold():
    m = MovingMasker(MaskingSchedule(0, 1, 2))
    m.start_step(0)
    target, source = _segs(slice(0, 2), slice(2, 4))  # disjoint car masks: IoU 0
    m.masking.threshold = 0.5
    keep = m.masking.mask(target, [source])
    car = (target == 13) | (source == 13)
    assert torch.equal(keep[:, 0] == 0, car)
    same_t, same_s = _segs(slice(0, 2), slice(0, 2))  # IoU 1: kept
    assert torch.all(m.masking.mask(same_t, [same_s]) == 1)


@pytest.fixture(scope="module")
def video_batch():
    torch.manual_seed(0)
    b, h, w = 2, 64, 96
    color = torch.rand(b, 3, 3, h, w)
    K = torch.tensor([[50.0, 0, w / 2], [0, 50.0, h / 2], [0, 0, 1]]).expand(b, 3, 3).clone()
    return {"color": color, "color_aug": color, "K": K,
            "seg_image": torch.rand(b, 3, h, w), "seg_label": torch.randint(0, 19, (b, h, w))}


def _nets(seed: int = 0) -> nn.ModuleDict:
    torch.manual_seed(seed)
    return nn.ModuleDict({"depth": DepthNet(18, seg_classes=19), "pose": PoseNet(18)})


def test_finetune_masking_removes_the_masked_pixels_from_the_photometric_loss(video_batch, monkeypatch):
    opts = ko.FinetuneOptions()
    plain, _ = ko.FinetuneObjective(opts)(video_batch, _nets())
    masker = MovingMasker(MaskingSchedule(0, 1, 2))
    objective = ko.FinetuneObjective(opts, masker)
    objective.start_step(0)
    monkeypatch.setattr(masker, "mask", lambda net, frames, pixels, conv: torch.ones(2, 1, 64, 96))
    kept, _ = objective(video_batch, _nets())
    assert kept.item() == pytest.approx(plain.item(), rel=1e-6)
    monkeypatch.setattr(masker, "mask", lambda net, frames, pixels, conv: torch.zeros(2, 1, 64, 96))
    _, logs = objective(video_batch, _nets())
    assert logs["reprojection"] == 0.0 and logs["masked_pixels"] == 1.0


def test_masked_errors_fall_back_to_the_stereo_warp():
    reproj = torch.tensor([0.1, 0.2, 0.5]).view(1, 3, 1, 1).expand(1, 3, 1, 2).clone()
    keep = torch.tensor([1.0, 0.0]).view(1, 1, 1, 2)
    stereo = ko._masked(reproj, keep, n_temporal=2)
    assert stereo[0, :, 0, 0].tolist() == pytest.approx([0.1, 0.2, 0.5])  # kept: unchanged
    masked = [ko.MASKED_ERROR, ko.MASKED_ERROR, 0.5]  # never the minimum
    assert stereo[0, :, 0, 1].tolist() == pytest.approx(masked)
    mono = ko._masked(reproj[:, :2], keep, n_temporal=2)
    assert mono[0, :, 0, 1].tolist() == [0.0, 0.0]  # no stereo source: excluded


def test_a_stereo_finetune_learns_masked_pixels_from_the_other_camera(video_batch, monkeypatch):
    b, _, _, h, w = video_batch["color"].shape
    color = torch.cat([video_batch["color"], torch.rand(b, 1, 3, h, w)], 1)
    stereo_T = torch.eye(4).expand(b, 4, 4).clone()
    stereo_T[:, 0, 3] = -0.1
    batch = {**video_batch, "color": color, "color_aug": color, "stereo_T": stereo_T}
    opts = ko.FinetuneOptions(photo=ko.PhotoOptions(frame_ids=(0, -1, 1), stereo=True))
    masker = MovingMasker(MaskingSchedule(0, 1, 2))
    objective = ko.FinetuneObjective(opts, masker)
    objective.start_step(0)
    monkeypatch.setattr(masker, "mask", lambda net, frames, pixels, conv: torch.zeros(b, 1, h, w))
    loss, logs = objective(batch, _nets())
    assert logs["masked_pixels"] == 1.0 and logs["reprojection"] > 0.1  # the stereo warp's error
    loss.backward()
    monkeypatch.setattr(masker, "mask", lambda net, frames, pixels, conv: torch.ones(b, 1, h, w))
    kept, _ = objective(batch, _nets())
    plain, _ = ko.FinetuneObjective(opts)(batch, _nets())
    assert kept.item() == pytest.approx(plain.item(), rel=1e-6)
    mono, _ = ko.FinetuneObjective(ko.FinetuneOptions())(video_batch, _nets())
    assert abs(plain.item() - mono.item()) > 1e-4  # the stereo source counts


def test_finetune_masking_segments_the_frames_in_eval_mode(video_batch):
    masker = MovingMasker(MaskingSchedule(0, 1, 2))
    objective = ko.FinetuneObjective(ko.FinetuneOptions(), masker)
    objective.start_step(0)
    nets = _nets()
    nets.train()
    loss, logs = objective(video_batch, nets)
    assert math.isfinite(loss.item()) and 0.0 <= logs["masked_pixels"] <= 1.0
    assert nets["depth"].training  # the eval-mode segmentation restored training mode
    assert len(masker.masking.iou_log) <= 2  # at most one finite IoU per image


def test_joint_segmentation_adds_the_weighted_cross_entropy(video_batch):
    inner = ko.FinetuneObjective(ko.FinetuneOptions())
    nets = _nets()
    base, _ = inner(video_batch, nets)
    joint = JointSegmentation(inner, weight=0.5, grad_scales=(0.9, 0.1))
    loss, logs = joint(video_batch, nets)
    ce = L.segmentation_loss(nets["depth"].segment(video_batch["seg_image"]), video_batch["seg_label"],
                             torch.tensor(L.SEG_CLASS_WEIGHTS))
    assert nets["depth"].grad_scales == (0.9, 0.1)
    assert logs["segmentation"] == pytest.approx(ce.item(), rel=1e-5)
    assert loss.item() == pytest.approx(base.item() + 0.5 * ce.item(), rel=1e-5)
    assert hasattr(joint, "start_step")
    assert not hasattr(JointSegmentation(lambda b, n: 0, 1, (1, 1)), "start_step")


class _Counting:
    """A toy objective with a state: counts the steps it saw (saved in checkpoints)."""

    def __init__(self) -> None:
        self.seen = 0

    def start_step(self, step: int) -> None:
        self.seen += 1

    def state_dict(self) -> dict:
        return {"seen": self.seen}

    def load_state_dict(self, state: dict) -> None:
        self.seen = state["seen"]

    def __call__(self, batch, nets):
        loss = (nets["lin"](batch["x"]) ** 2).mean()
        return loss, {}


class _Data(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 4

    def __getitem__(self, key):
        return {"x": torch.ones(1) * key[1]}


def test_objective_state_is_checkpointed_and_resumed(tmp_path):
    nets = nn.ModuleDict({"lin": nn.Linear(1, 1)})
    first = _Counting()
    train(nets, first, _Data(), Schedule(steps=3, batch_size=2, checkpoint_every=3, log_every=1), tmp_path,
          seed=1, config={"a": 1}, progress=False)
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert first.seen == 3 and ckpt["objective"] == {"seen": 3}
    from models.training.checkpoint import RunFiles, resume, save_checkpoint

    opt = torch.optim.SGD(nets.parameters(), lr=0.1)
    half = _Counting()
    half.seen = 3
    (tmp_path / "r").mkdir()
    save_checkpoint(RunFiles(tmp_path / "r"), nets, opt, step=3, digest="d", schedule={}, history=[],
                    objective=half)
    again = _Counting()
    start, _ = resume(RunFiles(tmp_path / "r"), nets, opt, "d", 6, again)
    assert start == 3 and again.seen == 3


def test_the_labelled_batch_splits_over_the_data_parallel_processes():
    """segmentation.batch_size is a global count, like the depth batch: each of processes x nodes
    ranks takes its share; a count that does not split is refused with what to set."""
    from types import SimpleNamespace

    from workflow_scripts.training.kitti import _with_semantics
    from workflow_scripts.training.options import KittiSegmentation

    def objective(batch_size: int, processes: int, nodes: int = 1):
        seg = KittiSegmentation(enabled=True, batch_size=batch_size)
        plan = SimpleNamespace(stage="student", section=SimpleNamespace(segmentation=seg),
                               common=SimpleNamespace(processes=processes, nodes=nodes))
        return _with_semantics(plan, nn.ModuleDict({"depth": nn.Identity()}), object(), 10, None)

    assert objective(6, 1).batch_size == 6
    assert objective(6, 2).batch_size == 3 and objective(8, 2, nodes=2).batch_size == 2
    assert objective(0, 4).batch_size == 0  # 0: every labelled image of each process's share
    with pytest.raises(ValueError, match=r"segmentation.batch_size 6 does not split over the 4 processes"):
        objective(6, 2, nodes=2)


def test_monocular_teacher_masking_removes_the_masked_pixels(video_batch, monkeypatch):
    """SGDepth's own setting: the teacher on monocular video from scratch, with the masking."""
    opts = ko.TeacherOptions(photo=ko.PhotoOptions(frame_ids=(0, -1, 1), stereo=False), hints=False)
    plain, _ = ko.TeacherObjective(opts)(video_batch, _nets())
    masker = MovingMasker(MaskingSchedule(1, 1, 2))
    objective = ko.TeacherObjective(opts, masker)
    objective.start_step(0)  # before the masked part: no mask asked for, the loss unchanged
    monkeypatch.setattr(masker, "mask", lambda *a: pytest.fail("masked before its start"))
    early, logs = objective(video_batch, _nets())
    assert early.item() == pytest.approx(plain.item(), rel=1e-6) and logs["masked_pixels"] == 0.0
    objective.start_step(1)
    seen = {}

    def mask(net, frames, pixels, conv):
        seen["frames"], seen["sources"] = frames.shape[1], len(pixels)
        return torch.ones(2, 1, 64, 96)

    monkeypatch.setattr(masker, "mask", mask)
    kept, _ = objective(video_batch, _nets())
    assert kept.item() == pytest.approx(plain.item(), rel=1e-6)
    assert seen == {"frames": 3, "sources": 2}  # the target and its two temporal sources
    half = torch.ones(2, 1, 64, 96)
    half[..., :48] = 0.0
    monkeypatch.setattr(masker, "mask", lambda *a: half)
    partly, logs = objective(video_batch, _nets())
    assert logs["masked_pixels"] == 0.5 and 0.0 < partly.item() < plain.item()
    monkeypatch.setattr(masker, "mask", lambda *a: torch.zeros(2, 1, 64, 96))
    _, logs = objective(video_batch, _nets())
    assert logs["reprojection"] == 0.0 and logs["masked_pixels"] == 1.0
    with pytest.raises(ValueError, match="temporal source frames"):
        ko.TeacherObjective(ko.TeacherOptions(), masker)


@pytest.mark.parametrize(
    ("teacher", "message"),
    [
        ({"stereo": True, "hints": False, "masking": {"enabled": True}}, "needs frame_ids [0, -1, 1]"),
        ({"stereo": False, "hints": False, "frame_ids": [0, -1, 1], "loss": "sc_depth",
          "masking": {"enabled": True}}, "implemented for loss monodepth2"),
    ],
)
def test_teacher_masking_options_are_checked(teacher, message):
    from workflow_scripts.training.options import KittiTeacher
    from workflow_scripts.util.options import ConfigError, load_options

    with pytest.raises(ConfigError, match=re.escape(message)):
        load_options(KittiTeacher, teacher, "kitti.train.teacher")
