"""The three networks, each split at its prune site.

Every model is `head(trunk(x) * mask)`: `trunk` ends at the prune site (the
last convolutional layer, after its activation and pooling), `mask` is a 0/1
buffer with one entry per channel there, and `head` is everything after it.
A masked channel contributes exactly nothing downstream, whatever biases or
normalisation come before it. Pruning code only ever talks to `trunk`, `head`
(and its two parts below), `mask` and the names in `site`/`consumers`, so it
never branches on the model.

The head comes in two parts, for the pruning sweep: `head_linear` is what the
`consumers` (the layers that read the prune site: an nn.Linear on the
flattened site or an nn.Conv2d on it) compute, affine in the activations, and
`head_rest`, written by each model, is everything after; `head` is
`head_rest(head_linear(a))`. Masking one more channel then only subtracts that
channel's share (`linear_maps`) from head_linear's output (fpcore.prune).
"""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F


class PrunableNet(nn.Module):
    site: str = ""            # the conv layer whose output channels are pruned
    consumers: tuple = ()     # parameters whose dim 1 reads those channels

    def __init__(self, num_classes: int, width: int):
        super().__init__()
        self.config = {"num_classes": num_classes, "width": width}
        self.register_buffer("mask", torch.ones(width))

    @property
    def channels(self) -> int:
        return self.mask.numel()

    @property
    def pruned(self) -> int:
        """How many channels the mask silences."""
        return int((self.mask == 0).sum())

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def head(self, a: torch.Tensor) -> torch.Tensor:
        """Everything after the prune site: `head_rest(head_linear(a))`."""
        return self.head_rest(self.head_linear(a))

    def head_rest(self, z: tuple) -> torch.Tensor:
        """The logits from `head_linear(a)`: what the head does after its consumers."""
        raise NotImplementedError

    def _consumers(self) -> list:
        layers = []
        for name in self.consumers:
            layer = self.get_submodule(name.rsplit(".", 1)[0])
            if not (isinstance(layer, nn.Linear) or
                    (isinstance(layer, nn.Conv2d) and layer.groups == 1)):
                raise TypeError(f"{type(self).__name__}: consumer {name!r} must be an nn.Linear "
                                "on the flattened site or an ungrouped nn.Conv2d on the site")
            layers.append(layer)
        return layers

    def head_linear(self, a: torch.Tensor) -> tuple:
        """The consumers' outputs on the activations `a`, in order: affine in `a`."""
        return tuple(layer(a.flatten(1)) if isinstance(layer, nn.Linear) else layer(a)
                     for layer in self._consumers())

    @torch.no_grad()
    def linear_maps(self, height: int, width: int) -> torch.Tensor:
        """`head_linear` without its biases, one matrix per channel: shape (C, H*W, outputs).

        Row p of matrix c is what one unit of activation of channel c at
        position p adds to head_linear's outputs, flattened and joined in order
        (the weights themselves, exactly). So head_linear(a) equals its biases
        plus the sum over c of a[:, c].flatten(1) @ maps[c].
        """
        c, hw = self.channels, height * width
        onehot = torch.eye(hw, device=self.mask.device).view(hw, 1, height, width)
        parts = []
        for layer in self._consumers():
            if isinstance(layer, nn.Linear):
                parts.append(layer.weight.view(-1, c, hw).permute(1, 2, 0))
            else:                      # every channel's weights applied to every one-hot position
                k = layer.weight.transpose(0, 1).reshape(-1, 1, *layer.kernel_size)
                out = F.conv2d(onehot.expand(hw, c, height, width), k, None, layer.stride,
                               layer.padding, layer.dilation, groups=c)
                parts.append(out.view(hw, c, layer.out_channels, -1).transpose(0, 1).flatten(2))
        return torch.cat(parts, 2)

    def activations(self, x: torch.Tensor) -> torch.Tensor:
        """Masked activations at the prune site, shape (N, C, H, W)."""
        return self.trunk(x) * self.mask.view(1, -1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.activations(x))


class SignNet(PrunableNet):
    """A small VGG-style network for 32x32 traffic signs; prunes conv4 (64 channels).

    BatchNorm speeds up training of the first three layers; the pruned layer
    has none, so a channel's bias alone decides when it fires.
    """
    site, consumers = "conv4", ("fc1.weight",)

    def __init__(self, num_classes: int = 43, width: int = 64):
        super().__init__(num_classes, width)
        self.conv1, self.bn1 = nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32)
        self.conv2, self.bn2 = nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64)
        self.conv3, self.bn3 = nn.Conv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64)
        self.conv4 = nn.Conv2d(64, width, 3, padding=1)
        self.fc1, self.fc2 = nn.Linear(width * 16, 256), nn.Linear(256, num_classes)
        self.drop = nn.Dropout(0.3)

    def trunk(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)                # 16x16
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)                # 8x8
        x = F.relu(self.bn3(self.conv3(x)))
        return F.max_pool2d(F.relu(self.conv4(x)), 2)                       # (N, width, 4, 4)

    def head_rest(self, z):
        (h,) = z                                                            # fc1's output
        return self.fc2(self.drop(F.relu(h)))


class DeepID(PrunableNet):
    """DeepID-I for 55x47 grayscale faces, as the paper's authors used it; prunes conv3 (60).

    conv1 20@4x4 -> pool -> conv2 40@3x3 -> pool -> conv3 60@3x3 -> pool3 (60x5x4)
    -> conv4 80@2x2; fc160 on flattened pool3 plus fc160 on flattened conv4, ReLU,
    dropout, classifier.
    """
    site, consumers = "conv3", ("conv4.weight", "fc1.weight")

    def __init__(self, num_classes: int = 62, width: int = 60):
        super().__init__(num_classes, width)
        self.conv1, self.conv2 = nn.Conv2d(1, 20, 4), nn.Conv2d(20, 40, 3)
        self.conv3, self.conv4 = nn.Conv2d(40, width, 3), nn.Conv2d(width, 80, 2)
        self.fc1, self.fc2 = nn.Linear(width * 5 * 4, 160), nn.Linear(80 * 4 * 3, 160)
        self.drop, self.classifier = nn.Dropout(0.3), nn.Linear(160, num_classes)

    def trunk(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return F.max_pool2d(F.relu(self.conv3(x)), 2)                       # (N, width, 5, 4)

    def head_rest(self, z):
        c4, h = z                                                           # conv4's, fc1's outputs
        return self.classifier(self.drop(F.relu(h + self.fc2(F.relu(c4).flatten(1)))))


class SpeechNet(PrunableNet):
    """A small AlexNet-like network on log spectrograms (1x129x63); prunes conv5 (64)."""
    site, consumers = "conv5", ("fc1.weight",)

    def __init__(self, num_classes: int = 10, width: int = 64):
        super().__init__(num_classes, width)
        self.conv1, self.bn1 = nn.Conv2d(1, 24, 5, stride=2, padding=2), nn.BatchNorm2d(24)
        self.conv2, self.bn2 = nn.Conv2d(24, 48, 3, padding=1), nn.BatchNorm2d(48)
        self.conv3, self.bn3 = nn.Conv2d(48, 64, 3, padding=1), nn.BatchNorm2d(64)
        self.conv4, self.bn4 = nn.Conv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64)
        self.conv5 = nn.Conv2d(64, width, 3, padding=1)
        self.fc1, self.fc2 = nn.Linear(width * 8 * 4, 128), nn.Linear(128, num_classes)
        self.drop = nn.Dropout(0.3)

    def trunk(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)                # 32x16
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)                # 16x8
        x = F.relu(self.bn4(self.conv4(F.relu(self.bn3(self.conv3(x))))))
        return F.max_pool2d(F.relu(self.conv5(x)), 2)                       # (N, width, 8, 4)

    def head_rest(self, z):
        (h,) = z                                                            # fc1's output
        return self.fc2(self.drop(F.relu(h)))


def require_prunable(model) -> PrunableNet:
    """Fail early and clearly when a model has no prune site."""
    if not isinstance(model, PrunableNet):
        raise TypeError(
            f"{type(model).__name__} has no prune site: pruning needs an fpcore PrunableNet "
            "(trunk/head/mask, e.g. SignNet, DeepID, SpeechNet); subclass PrunableNet to add one")
    return model


def site_conv(model: PrunableNet) -> nn.Conv2d:
    """The convolution whose output channels are pruned."""
    return getattr(require_prunable(model), model.site)


def shrink(model: PrunableNet) -> PrunableNet:
    """A physically smaller copy: masked channels removed with their inputs downstream.

    Its outputs equal the masked network's (in eval mode), and its state dict
    is a plain one any tool can load.
    """
    require_prunable(model)
    keep = model.mask.nonzero().flatten()
    small = type(model)(**{**model.config, "width": len(keep)}).to(model.mask.device)
    state = {}
    for name, t in model.state_dict().items():
        if name.startswith(model.site + "."):
            t = t[keep]
        elif name in model.consumers:
            t = t[:, keep] if t.dim() == 4 else t.view(t.shape[0], model.channels, -1)[:, keep].flatten(1)
        elif name == "mask":
            t = torch.ones(len(keep), device=t.device)
        state[name] = t
    small.load_state_dict(state)
    return small.train(model.training)
