"""models.networks.segmentation and DepthNet's SGDepth head: gradient scaling at the shared encoder
(checked with autograd), the head-less net unchanged, one encoder pass for both tasks, NetworkSpec."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from models.networks.depth_net import DepthNet
from models.networks.resnet_encoder import ResnetEncoder
from models.networks.segmentation import ScaleGradient, SegmentationDecoder, scale_gradient
from models.networks.spec import NetworkSpec

H, W = 64, 192


def encoder_grad(encoder: nn.Module, loss: torch.Tensor) -> list[torch.Tensor]:
    return list(torch.autograd.grad(loss, list(encoder.parameters()), retain_graph=True))


class TestScaleGradient:
    def test_identity_forward_scaled_backward(self):
        x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
        y = scale_gradient(x, 0.3)
        assert torch.equal(y, x)
        (g,) = torch.autograd.grad((y * torch.arange(4.0, dtype=torch.float64)).sum(), x)
        torch.testing.assert_close(g, 0.3 * torch.arange(4.0, dtype=torch.float64).expand(3, 4),
                                   rtol=0, atol=0)
        assert ScaleGradient.apply(x, -1.0).equal(x)  # a gradient reversal layer as well

    def test_toy_encoder_gets_the_weighted_sum_of_the_task_gradients(self):
        torch.manual_seed(0)
        encoder = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Tanh())
        depth_head, seg_head = nn.Conv2d(4, 1, 1), nn.Conv2d(4, 5, 1)
        x = torch.randn(2, 3, 6, 8)
        labels = torch.randint(0, 5, (2, 6, 8))

        def losses(s_d: float, s_s: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
            f = encoder(x)
            d = depth_head(scale_gradient(f, s_d))
            s = seg_head(scale_gradient(f, s_s))
            return d, s, d.square().mean(), nn.functional.cross_entropy(s, labels)

        d0, s0, loss_d, loss_s = losses(1.0, 1.0)
        g_depth, g_seg = encoder_grad(encoder, loss_d), encoder_grad(encoder, loss_s)
        s_d, s_s = 0.9, 0.1
        d1, s1, loss_d1, loss_s1 = losses(s_d, s_s)
        assert torch.equal(d0, d1) and torch.equal(s0, s1)  # forward unchanged
        g_both = encoder_grad(encoder, loss_d1 + loss_s1)
        for g, gd, gs in zip(g_both, g_depth, g_seg, strict=True):
            torch.testing.assert_close(g, s_d * gd + s_s * gs, rtol=1e-5, atol=1e-7)
        # the heads themselves still get their unscaled gradients
        torch.testing.assert_close(torch.autograd.grad(loss_d1, depth_head.weight)[0],
                                   torch.autograd.grad(loss_d, depth_head.weight)[0])


class TestDepthNetSegmentation:
    def test_without_head_the_net_is_unchanged(self):
        torch.manual_seed(3)
        old = DepthNet(18)
        torch.manual_seed(3)
        new = DepthNet(18, seg_classes=0)
        torch.manual_seed(3)
        with_head = DepthNet(18, seg_classes=19)
        assert list(new.state_dict()) == list(old.state_dict())
        for k, v in old.state_dict().items():
            assert torch.equal(new.state_dict()[k], v), k
            assert torch.equal(with_head.state_dict()[k], v), k  # head built after: same draws
        extra = set(with_head.state_dict()) - set(old.state_dict())
        assert extra and all(k.startswith("seg_decoder.") for k in extra)
        x = torch.rand(2, 3, H, W)
        old.eval(), new.eval(), with_head.eval()
        with torch.no_grad():
            for a, b, c in zip(old(x), new(x), with_head(x), strict=True):
                assert torch.equal(a, b) and torch.equal(a, c)
        assert new.grad_scales == (1.0, 1.0) and not new.has_segmentation

    def test_segment_without_head_raises(self):
        net = DepthNet(18)
        with pytest.raises(ValueError, match="no segmentation head.*seg_classes"):
            net.segment(torch.rand(1, 3, H, W))
        with pytest.raises(ValueError, match="no segmentation head"):
            net.forward_both(torch.rand(1, 3, H, W))
        with pytest.raises(ValueError, match="seg_classes"):
            DepthNet(18, seg_classes=-1)

    def test_forward_both_equals_forward_and_segment(self):
        torch.manual_seed(1)
        net = DepthNet(18, seg_classes=19).eval()
        net.grad_scales = (0.95, 0.05)
        x = torch.rand(2, 3, H, W)
        with torch.no_grad():
            disps, logits = net.forward_both(x)
            alone = net(x)
            seg = net.segment(x)
        assert logits.shape == (2, 19, H, W)
        assert torch.equal(logits, seg)
        assert len(disps) == len(alone)
        for a, b in zip(disps, alone, strict=True):
            assert torch.equal(a, b)

    def test_forward_both_scales_the_encoder_gradient(self):
        torch.manual_seed(2)
        net = DepthNet(18, "sc_depth", seg_classes=4).eval()
        x = torch.rand(1, 3, 64, 64)
        labels = torch.randint(0, 4, (1, 64, 64))
        enc = net.encoder

        def task_losses() -> tuple[torch.Tensor, torch.Tensor]:
            disps, logits = net.forward_both(x)
            return disps[0].mean(), nn.functional.cross_entropy(logits, labels)

        loss_d, loss_s = task_losses()
        g_d, g_s = encoder_grad(enc, loss_d), encoder_grad(enc, loss_s)
        net.grad_scales = (0.9, 0.1)
        loss_d1, loss_s1 = task_losses()
        assert torch.equal(loss_d, loss_d1) and torch.equal(loss_s, loss_s1)
        for g, gd, gs in zip(encoder_grad(enc, loss_d1 + loss_s1), g_d, g_s, strict=True):
            torch.testing.assert_close(g, 0.9 * gd + 0.1 * gs, rtol=1e-4, atol=1e-4 * gd.abs().max().item())
        # forward and segment use their own factor alone
        for g, gs in zip(encoder_grad(enc, nn.functional.cross_entropy(net.segment(x), labels)), g_s,
                         strict=True):
            torch.testing.assert_close(g, 0.1 * gs, rtol=1e-4, atol=1e-4 * gs.abs().max().item())

    def test_segmentation_decoder_shapes_and_size_check(self):
        enc = ResnetEncoder(18)
        dec = SegmentationDecoder(enc.num_ch_enc)
        assert dec.n_classes == 19
        assert dec(enc(torch.rand(1, 3, H, W))).shape == (1, 19, H, W)
        with pytest.raises(ValueError, match="multiples of 32"):
            dec(enc(torch.rand(1, 3, 64, 80)))
        with pytest.raises(ValueError, match="5 feature channels"):
            SegmentationDecoder([64, 64, 128])


class TestNetworkSpec:
    def test_segmentation_field_builds_the_head(self):
        assert NetworkSpec().segmentation == 0
        assert not NetworkSpec().build().has_segmentation
        net = NetworkSpec(segmentation=19, decoder="sc_depth").build()
        assert isinstance(net, DepthNet) and net.seg_classes == 19
        assert net.segment(torch.rand(1, 3, 64, 64)).shape == (1, 19, 64, 64)

    def test_other_kinds_refuse_a_head(self):
        with pytest.raises(ValueError, match="needs kind resnet"):
            NetworkSpec(kind="unet", segmentation=19).build()
        with pytest.raises(ValueError, match="needs kind resnet"):
            NetworkSpec(kind="fc_densenet57", segmentation=3).build()

    def test_round_trip_through_model_file(self, tmp_path):
        from models.model_file import load_model, save_model

        spec = NetworkSpec(segmentation=19, decoder="sc_depth")
        torch.manual_seed(4)
        net = spec.build()
        path = tmp_path / "model.pt"
        save_model(nn.ModuleDict({"depth": net}), path, branch="kitti", stage="s", network=spec,
                   size=(64, 64), steps=1)
        loaded, meta = load_model(path)
        assert meta["network"]["segmentation"] == 19 and loaded.seg_classes == 19
        x = torch.rand(1, 3, 64, 64)
        with torch.no_grad():
            torch.testing.assert_close(loaded.segment(x), net.eval().segment(x), rtol=0, atol=0)
        # an old model file (no "segmentation" in its network meta) still loads, head-less
        save_model(nn.ModuleDict({"depth": NetworkSpec().build()}), path, branch="kitti", stage="s",
                   network=NetworkSpec(), size=(64, 64), steps=1)
        state = torch.load(path, weights_only=True)
        del state["meta"]["network"]["segmentation"]
        torch.save(state, path)
        loaded, meta = load_model(path)
        assert "segmentation" not in meta["network"] and not loaded.has_segmentation
