"""Networks of the five references, one per file (see each module's docstring)."""

from models.networks.depth_decoder import DepthDecoder
from models.networks.depth_net import DepthNet
from models.networks.fc_densenet import FCDenseNet, fc_densenet57, init_kaiming
from models.networks.pose_net import PoseDecoder, PoseNet
from models.networks.resnet_encoder import ResNet, ResnetEncoder, load_torchvision_weights
from models.networks.rsu_decoder import RSUDecoder, full_resolution
from models.networks.unet import UNet

__all__ = [
    "DepthDecoder", "DepthNet", "FCDenseNet", "fc_densenet57", "init_kaiming", "PoseDecoder", "PoseNet",
    "ResNet", "ResnetEncoder", "load_torchvision_weights", "RSUDecoder", "full_resolution", "UNet",
]
