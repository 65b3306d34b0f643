"""Small torch models for the importer's tests: every mapped op, residual and concat patterns."""
from __future__ import annotations

import torch
from torch import nn


class Ops(nn.Module):
    """Every op the importer maps that sits in a chain, with keywords away from their defaults."""

    def __init__(self, shape=(3, 20, 24)) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8, eps=1e-3, momentum=0.3), nn.ReLU(),
            nn.Conv2d(8, 8, (3, 5), stride=(1, 2), padding=(2, 1), dilation=(2, 1), groups=2, bias=False),
            nn.LeakyReLU(0.2), nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True),
            nn.ELU(0.5), nn.GELU(approximate="tanh"), nn.Conv2d(8, 6, 1), nn.GELU(),
            nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False), nn.Sigmoid(),
            nn.AvgPool2d(2, ceil_mode=True), nn.Tanh(), nn.ReLU6(), nn.Hardswish(), nn.Hardsigmoid(), nn.SiLU(),
            nn.MaxPool2d(2, dilation=1),
        )
        with torch.no_grad():
            features = self.features.eval()(torch.zeros(1, *shape)).numel()
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(features, 7), nn.Dropout(0.3), nn.Linear(7, 5),
                                  nn.LogSoftmax(dim=1))

    def forward(self, x):
        return self.head(self.features(x))


class Heads(nn.Module):
    """The other ways to end: a mean over H and W, a global pool then a flatten or a squeeze, a view that flattens,
    x @ W + b, Softmax."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.conv = nn.Conv2d(3, 4, 3, stride=2)
        self.w = nn.Parameter(torch.randn(4 * 3 * 3 if kind == "view" else 4, 6) * 0.1)
        self.b = nn.Parameter(torch.randn(6) * 0.1)

    def forward(self, x):
        x = self.conv(x)
        if self.kind == "mean":
            x = x.mean((2, 3))
        elif self.kind == "keepdim":
            x = torch.flatten(x.mean((-2, -1), keepdim=True), 1)
        elif self.kind == "gap":
            x = torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)
        elif self.kind == "squeeze":
            x = nn.functional.adaptive_avg_pool2d(x, 1).squeeze(-1).squeeze(-1)
        else:
            x = x.view(x.size(0), -1)
        return torch.softmax(x @ self.w + self.b, dim=1)


def conv_bn(cin, cout, stride=1):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU())


class Basic(nn.Module):
    """A ResNet block: projection shortcut when the shape changes, else the identity (x first in the Add)."""

    def __init__(self, cin, cout, stride=1) -> None:
        super().__init__()
        self.body = nn.Sequential(conv_bn(cin, cout, stride), nn.Conv2d(cout, cout, 3, padding=1),
                                  nn.BatchNorm2d(cout))
        self.shortcut = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride), nn.BatchNorm2d(cout))
                         if stride != 1 or cin != cout else None)

    def forward(self, x):
        if self.shortcut is None:
            return torch.relu(x + self.body(x))
        return torch.relu(self.body(x) + self.shortcut(x))


class Nested(nn.Module):
    """A residual holding a residual, then an inception-like Concat (one branch the identity, one a pool),
    a Concat inside a residual, and a Concat of features after Flatten."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.inner = Basic(8, 8)
        self.outer_tail = nn.Conv2d(8, 8, 1)
        self.b1 = nn.Conv2d(8, 4, 1)
        self.b2 = nn.Sequential(nn.Conv2d(8, 4, 1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1))
        self.b4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), nn.Conv2d(8, 4, 1))
        self.c1 = nn.Conv2d(20, 10, 1)
        self.c2 = nn.Conv2d(20, 10, 3, padding=1)
        self.down = nn.Conv2d(20, 20, 1, stride=2)
        self.fa = nn.Linear(20 * 4 * 4, 5)
        self.fb = nn.Linear(20 * 4 * 4, 3)

    def forward(self, x):
        x = self.stem(x)
        x = self.outer_tail(self.inner(x)) + x
        x = torch.cat([self.b1(x), self.b2(x), x, self.b4(x)], 1)
        x = x + torch.cat([self.c1(x), self.c2(x)], 1)
        x = torch.flatten(self.down(x), 1)
        return torch.cat([self.fa(x), self.fb(x)], 1)


class ResNetTiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(conv_bn(1, 8), Basic(8, 8), Basic(8, 16, 2), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                 nn.Linear(16, 10))

    def forward(self, x):
        return self.net(x)


class MulOfPaths(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(1, 2, 3)
        self.b = nn.Conv2d(1, 2, 3)

    def forward(self, x):
        return torch.flatten(self.a(x) * self.b(x), 1)


class Transposed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)

    def forward(self, x):
        return torch.flatten(self.conv(x).transpose(2, 3), 1)


class NotFlatten(nn.Module):
    def forward(self, x):
        return x.reshape(x.shape[0], 2, -1)


class TwoInputs(nn.Module):
    def forward(self, x, y):
        return x + y
