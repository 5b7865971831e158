"""models.networks: architectures against the references' numbers, weight loading, forward and
backward of every network on CPU at a small size."""

from __future__ import annotations

import pytest
import torch

from models.networks import (
    DepthDecoder,
    DepthNet,
    PoseNet,
    ResnetEncoder,
    RSUDecoder,
    UNet,
    fc_densenet57,
    full_resolution,
)
from workflow_scripts.util import InputDataError


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def conv(cin: int, cout: int, k: int = 3, bias: bool = True) -> int:
    return cin * cout * k * k + (cout if bias else 0)


# torchvision's resnet18 / resnet50 state dicts: 122 / 320 tensors, 11,689,512 / 25,557,032
# parameters including the 1000-class classifier (fc), which the encoder leaves out.
TV_KEYS = {
    18: {"conv1.weight": (64, 3, 7, 7), "bn1.running_var": (64,), "layer1.0.conv1.weight": (64, 64, 3, 3),
         "layer2.0.downsample.0.weight": (128, 64, 1, 1), "layer2.0.downsample.1.num_batches_tracked": (),
         "layer4.1.bn2.bias": (512,)},
    50: {"layer1.0.conv1.weight": (64, 64, 1, 1), "layer1.0.conv3.weight": (256, 64, 1, 1),
         "layer1.0.downsample.0.weight": (256, 64, 1, 1), "layer3.5.bn3.running_mean": (1024,),
         "layer4.2.conv3.weight": (2048, 512, 1, 1)},
}
TV_COUNTS = {18: (122, 11_689_512, 512), 50: (320, 25_557_032, 2048)}


def torchvision_state_dict(num_layers: int) -> dict[str, torch.Tensor]:
    """A random state dict in torchvision's layout (the key set is checked in the next test)."""
    sd = {k: torch.randn(v.shape) if v.is_floating_point() else v.clone()
          for k, v in ResnetEncoder(num_layers).encoder.state_dict().items()}
    width = TV_COUNTS[num_layers][2]
    sd["fc.weight"], sd["fc.bias"] = torch.randn(1000, width), torch.randn(1000)
    return sd


class TestResnetEncoder:
    @pytest.mark.parametrize("num_layers", [18, 50])
    def test_torchvision_layout_and_size(self, num_layers):
        sd = torchvision_state_dict(num_layers)
        n_keys, n_par, _ = TV_COUNTS[num_layers]
        assert len(sd) == n_keys
        assert sum(v.numel() for k, v in sd.items() if "running" not in k and "num_batches" not in k) == n_par
        for key, shape in TV_KEYS[num_layers].items():
            assert tuple(sd[key].shape) == shape, key

    def test_resnet50_strides_on_the_3x3_conv(self):
        block = ResnetEncoder(50).encoder.layer2[0]
        assert block.conv1.stride == (1, 1) and block.conv2.stride == (2, 2)

    @pytest.mark.parametrize("num_layers, channels",
                             [(18, [64, 64, 128, 256, 512]), (50, [64, 256, 512, 1024, 2048])])
    def test_feature_shapes(self, num_layers, channels):
        enc = ResnetEncoder(num_layers)
        assert enc.num_ch_enc == channels
        feats = enc(torch.rand(2, 3, 64, 96))
        assert [tuple(f.shape) for f in feats] == [(2, c, 64 // 2 ** (i + 1), 96 // 2 ** (i + 1))
                                                   for i, c in enumerate(channels)]

    def test_input_normalisation(self):
        enc = ResnetEncoder(18).eval()
        assert enc(torch.full((1, 3, 64, 64), 0.45))[0].abs().max() == 0  # (x - 0.45) = 0
        f0 = enc(torch.full((1, 3, 64, 64), 0.45 + 0.225))[0]  # normalised input = 1
        w = enc.encoder.conv1.weight.sum((1, 2, 3)) / (1 + enc.encoder.bn1.eps) ** 0.5
        torch.testing.assert_close(f0[0, :, 10, 10], w.clamp(min=0))

    def test_loads_torchvision_weights_for_one_and_two_images(self, tmp_path):
        sd = torchvision_state_dict(18)
        path = tmp_path / "resnet18.pth"
        torch.save(sd, path)
        enc = ResnetEncoder(18, weights_path=path)
        torch.testing.assert_close(enc.encoder.layer3[1].conv2.weight, sd["layer3.1.conv2.weight"])
        pose_enc = ResnetEncoder(18, num_input_images=2, weights_path=path)
        w = pose_enc.encoder.conv1.weight
        assert w.shape == (64, 6, 7, 7)
        torch.testing.assert_close(w, torch.cat([sd["conv1.weight"]] * 2, 1) / 2)

    def test_bad_weight_files_name_the_file(self, tmp_path):
        sd = torchvision_state_dict(18)
        del sd["layer3.1.bn2.weight"]
        torch.save(sd, tmp_path / "missing.pth")
        torch.save(torchvision_state_dict(50), tmp_path / "r50.pth")
        torch.save({"weights": object()}, tmp_path / "pickle.pth")
        for name, match in [("missing.pth", "missing.*layer3.1.bn2.weight"), ("r50.pth", "do not match"),
                            ("pickle.pth", "cannot be read"), ("absent.pth", "not found")]:
            with pytest.raises(InputDataError, match=match) as err:
                ResnetEncoder(18, weights_path=tmp_path / name)
            assert str(tmp_path / name) in str(err.value)


class TestDepthDecoder:
    def test_parameter_count_of_monodepth2(self):
        enc, dec = [64, 64, 128, 256, 512], [16, 32, 64, 128, 256]
        expected = sum(conv(enc[-1] if i == 4 else dec[i + 1], dec[i])
                       + conv(dec[i] + (enc[i - 1] if i else 0), dec[i]) for i in range(5))
        expected += sum(conv(dec[s], 1) for s in range(4))
        assert n_params(DepthDecoder(enc)) == expected == 3_152_724
        assert n_params(DepthNet(18)) == 11_176_512 + expected  # monodepth2's "14.3M"

    def test_outputs(self):
        enc = ResnetEncoder(18)
        disps = DepthDecoder(enc.num_ch_enc)(enc(torch.rand(1, 3, 64, 96)))
        assert [tuple(d.shape[-2:]) for d in disps] == [(64, 96), (32, 48), (16, 24), (8, 12)]
        assert all(((d > 0) & (d < 1)).all() for d in disps)
        sc = DepthNet(18, "sc_depth")(torch.rand(1, 3, 64, 96))
        assert len(sc) == 1 and sc[0].shape == (1, 1, 64, 96)

    def test_size_not_multiple_of_32(self):
        with pytest.raises(ValueError, match="multiples of 32"):
            DepthNet(18)(torch.rand(1, 3, 64, 80))


class TestPoseNet:
    def test_parameter_count(self):
        pose_dec = conv(512, 256, 1) + 2 * conv(256, 256)
        encoder = 11_176_512 + 64 * 3 * 49  # conv1 takes 6 channels
        assert n_params(PoseNet(18)) == encoder + pose_dec + conv(256, 12, 1)  # monodepth2: 2 frames
        assert n_params(PoseNet(18, "euler")) == encoder + pose_dec + conv(256, 6, 1)  # SC-Depth: 1

    @pytest.mark.parametrize("rotation", ["axis_angle", "euler"])
    def test_vector_layout_and_matrix(self, rotation):
        net = PoseNet(18, rotation=rotation)
        with torch.no_grad():
            net.decoder.pose2.weight.zero_()
            net.decoder.pose2.bias.copy_(torch.arange(float(net.decoder.pose2.bias.numel())) + 1)
        vec = net(torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64))
        torch.testing.assert_close(vec, 0.01 * (torch.arange(6.0) + 1).expand(2, 6))
        T = net.to_matrix(vec)
        t_expected = vec[:, 3:] if rotation == "axis_angle" else vec[:, :3]
        torch.testing.assert_close(T[:, :3, 3], t_expected)
        torch.testing.assert_close(net.to_matrix(vec, invert=True) @ T, torch.eye(4).expand(2, 4, 4),
                                   atol=1e-6, rtol=0)


class TestEndoscopyNetworks:
    def test_fc_densenet57_architecture(self):
        def dense(cin, n=4, g=12):
            return sum(2 * (cin + i * g) + conv(cin + i * g, g) for i in range(n))

        chans = [48 + 48 * k for k in range(1, 6)]  # after each down block: 96 … 288
        down = sum(dense(c - 48) + 2 * c + conv(c, c, 1) for c in chans)
        up = sum(conv(48, 48) + dense(48 + skip) for skip in reversed(chans))
        expected = conv(3, 48) + down + dense(288) + up + conv(144 + 48, 1, 1)
        net = fc_densenet57()
        assert n_params(net) == expected == 1_374_865
        out = net(torch.rand(2, 3, 64, 96))
        assert out.shape == (2, 1, 64, 96) and (out >= 0).all()
        with pytest.raises(ValueError, match="multiples of 32"):
            net(torch.rand(1, 3, 48, 64))

    def test_unet_architecture(self):
        ch = [2 ** (3 + i) for i in range(7)]
        block = lambda cin, cout: conv(cin, cout) + conv(cout, cout)  # noqa: E731
        down = block(3, 8) + sum(block(ch[i - 1], ch[i]) for i in range(1, 7))
        up = sum(conv(ch[i + 1], ch[i]) + block(ch[i + 1], ch[i]) for i in range(6))
        net = UNet()
        assert n_params(net) == down + up + conv(8, 1, 1)
        assert net(torch.rand(1, 3, 64, 128)).shape == (1, 1, 64, 128)
        with pytest.raises(ValueError, match="multiples of 64"):
            net(torch.rand(1, 3, 96, 128))

    def test_leaky_unet_passes_gradient_where_the_relu_unet_is_dead(self, tmp_path):
        """negative_slope: every activation is a LeakyReLU of that slope, the same weights; with the
        last block's pre-activations all negative the ReLU net's output is constant with no
        gradient to those weights, the leaky one's is not. The spec survives model.pt."""
        from models.model_file import load_model, save_model
        from models.networks.spec import NetworkSpec

        spec = NetworkSpec(kind="unet", width=0.25, negative_slope=0.01)
        leaky, relu = spec.build(), NetworkSpec(kind="unet", width=0.25).build()
        relu.load_state_dict(leaky.state_dict())
        acts = [m for m in leaky.modules() if isinstance(m, torch.nn.LeakyReLU)]
        assert len(acts) == 2 * 13 and all(m.negative_slope == 0.01 for m in acts)
        assert not any(isinstance(m, torch.nn.ReLU) for m in leaky.modules())
        for net in (leaky, relu):  # kill the last conv block: hugely negative biases
            net.up_path[-1].conv_block[2].bias.data.fill_(-1e3)
        x = torch.rand(1, 3, 64, 64)
        grads = []
        for net in (relu, leaky):
            net.zero_grad()
            net(x).std().backward()
            grads.append(net.up_path[-1].conv_block[0].weight.grad.abs().sum().item())
        assert grads[0] == 0 and grads[1] > 0
        save_model(torch.nn.ModuleDict({"depth": leaky}), tmp_path / "model.pt", branch="endo",
                   stage="teacher", network=spec, size=(64, 64), steps=1)
        loaded, meta = load_model(tmp_path / "model.pt")
        assert meta["network"]["negative_slope"] == 0.01
        torch.testing.assert_close(loaded(x), leaky.eval()(x))


class TestRSUDecoder:
    def test_full_scale_outputs(self):
        enc = ResnetEncoder(18)
        disps = RSUDecoder(enc.num_ch_enc, use_encoder_disp=True)(enc(torch.rand(1, 3, 160, 192)))
        sizes = [tuple(d.shape[-2:]) for d in disps]
        assert sizes == [(160, 192), (80, 96), (40, 48), (20, 24), (10, 12), (5, 6), (10, 12), (20, 24),
                         (40, 48), (80, 96)]  # d1 … d5, e4 … e0
        assert all(((d > 0) & (d < 1)).all() for d in disps)
        full = full_resolution(disps, (160, 192))
        assert all(d.shape == (1, 1, 160, 192) for d in full)
        torch.testing.assert_close(full[0], disps[0])

    def test_decoder_only_and_size_limits(self):
        enc = ResnetEncoder(18)
        assert len(RSUDecoder(enc.num_ch_enc, use_encoder_disp=False)(enc(torch.rand(1, 3, 96, 128)))) == 5
        with pytest.raises(ValueError, match=">= 160"):
            RSUDecoder(enc.num_ch_enc)(enc(torch.rand(1, 3, 128, 128)))


NETWORKS = {
    "resnet18_monodepth2": (lambda: DepthNet(18), (2, 3, 64, 96)),
    "resnet50_monodepth2": (lambda: DepthNet(50), (1, 3, 64, 64)),
    "sc_depth": (lambda: DepthNet(18, "sc_depth"), (2, 3, 64, 96)),
    "epcdepth_full_scale": (lambda: DepthNet(18, "rsu_full"), (1, 3, 160, 160)),
    "pose_net": (lambda: PoseNet(18), (2, 3, 64, 96)),
    "fc_densenet57": (fc_densenet57, (2, 3, 64, 96)),
    "unet_teacher": (UNet, (1, 3, 64, 64)),
}


@pytest.mark.parametrize("name", list(NETWORKS))
def test_forward_backward_on_cpu(name):
    torch.manual_seed(0)
    make, shape = NETWORKS[name]
    net = make().train()
    x = torch.rand(shape)
    out = net(x, torch.rand(shape)) if name == "pose_net" else net(x)
    outs = out if isinstance(out, list) else [out]
    loss = sum(o.mean() for o in outs)
    loss.backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
