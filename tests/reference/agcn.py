"""Slow, structure-faithful transcriptions of the two reference AGCN models.

Used only by the tests (agcn's fused model must give the same outputs from the same weights,
and the loader must read checkpoints with these key names) and by the model benchmark (to
time the reference structure). They keep the references' structure on purpose: one small
conv per subset for theta, phi and the output projection, a Python loop over the three
subsets, `permute(...).contiguous()` before each embedding product.

- `RefAGCN`: lshiwjx/2s-AGCN `model/agcn.py` `Model` (CVPR 2019): fixed graph `A` plus a
  learned offset `PA` (init 1e-6) plus a data-dependent `softmax(theta^T phi / (inter*T))`
  over dim -2; `fc` normal(0, sqrt(2/num_class)). State-dict keys as the original
  (`data_bn.*`, `l1.gcn1.PA`, `l1.gcn1.conv_a.0.weight`, ..., `l1.tcn1.conv.weight`,
  `l5.residual.bn.*`, `fc.*`). The fixed `A` is a non-persistent buffer (the original keeps
  it as a plain attribute and moves it with `.cuda()` in `forward`; neither is in its
  state dict).
- `RefMMAAGCN`: MMAction2 1.x `RecognizerGCN(AAGCN(gcn_attention=False), GCNHead)` (same
  unit as pyskl): each `unit_aagcn` learns `A` (a Parameter initialised to the normalised
  graph) and adds `alpha * tanh(theta^T phi / (inter*T))`, `alpha` a scalar initialised to
  0; `GCNHead` fc normal(std 0.01), bias 0. Keys as MMAction2 (`backbone.A`,
  `backbone.data_bn.*`, `backbone.gcn.0.gcn.A`, `backbone.gcn.0.gcn.alpha`,
  `backbone.gcn.0.gcn.conv_d.0.weight`, `backbone.gcn.4.residual.conv.weight`, ...,
  `cls_head.fc.*`; pyskl names the head `cls_head.fc_cls`).

Both take `(N, C, T, V, M)` and return logits `(N, num_class)`. The graphs are built here
from the references' own hard-coded edge lists, independently of `agcn_cli.skeleton.layouts`.
"""

import math

import numpy as np
import torch
import torch.nn as nn

# ---- graphs, as the references hard-code them -------------------------------------------

# 1-based (child, parent) pairs of the original graph/ntu_rgb_d.py: the hand chains 22-23-8, 24-25-12.
NTU_2SAGCN_INWARD_1B = [(1, 2), (2, 21), (3, 21), (4, 3), (5, 21), (6, 5), (7, 6), (8, 7), (9, 21), (10, 9),
                        (11, 10), (12, 11), (13, 1), (14, 13), (15, 14), (16, 15), (17, 1), (18, 17), (19, 18),
                        (20, 19), (22, 23), (23, 8), (24, 25), (25, 12)]  # fmt: skip
# MMAction2 Graph(layout='nturgb+d'): 22 and 23 join 8; 24 and 25 join 12.
NTU_MMACTION2_INWARD_1B = NTU_2SAGCN_INWARD_1B[:20] + [(22, 8), (23, 8), (24, 12), (25, 12)]
# MMAction2 Graph(layout='coco'), 0-based.
COCO_INWARD = [(15, 13), (13, 11), (16, 14), (14, 12), (11, 5), (12, 6), (9, 7), (7, 5), (10, 8), (8, 6), (5, 0),
               (6, 0), (1, 0), (3, 1), (2, 0), (4, 2)]  # fmt: skip

GRAPHS = {
    "ntu-2s-agcn": (25, [(i - 1, j - 1) for i, j in NTU_2SAGCN_INWARD_1B]),
    "ntu-mmaction2": (25, [(i - 1, j - 1) for i, j in NTU_MMACTION2_INWARD_1B]),
    "coco": (17, COCO_INWARD),
}


def _edge2mat(links, num_node):
    A = np.zeros((num_node, num_node))
    for i, j in links:
        A[j, i] = 1
    return A


def _normalize_digraph(A):
    # column j divided by its sum (the in-degree of j); empty columns stay zero
    Dl = np.sum(A, 0)
    Dn = np.zeros_like(A)
    for i in range(A.shape[1]):
        if Dl[i] > 0:
            Dn[i, i] = Dl[i] ** (-1)
    return np.dot(A, Dn)


def spatial_graph(name):
    """(3, V, V) float32: identity, normalised inward, normalised outward."""
    num_node, inward = GRAPHS[name]
    outward = [(j, i) for i, j in inward]
    self_link = [(i, i) for i in range(num_node)]
    In = _normalize_digraph(_edge2mat(inward, num_node))
    Out = _normalize_digraph(_edge2mat(outward, num_node))
    return np.stack((_edge2mat(self_link, num_node), In, Out)).astype(np.float32)


# ---- shared pieces and inits --------------------------------------------------------------


def conv_branch_init(conv, branches):
    weight = conv.weight
    n, k1, k2 = weight.size(0), weight.size(1), weight.size(2)
    nn.init.normal_(weight, 0, math.sqrt(2.0 / (n * k1 * k2 * branches)))
    nn.init.constant_(conv.bias, 0)


def conv_init(conv):
    nn.init.kaiming_normal_(conv.weight, mode="fan_out")
    nn.init.constant_(conv.bias, 0)


def bn_init(bn, scale):
    nn.init.constant_(bn.weight, scale)
    nn.init.constant_(bn.bias, 0)


class unit_tcn(nn.Module):  # noqa: N801 (the reference's name)
    def __init__(self, in_channels, out_channels, kernel_size=9, stride=1):
        super().__init__()
        pad = int((kernel_size - 1) / 2)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=(kernel_size, 1), padding=(pad, 0),
                              stride=(stride, 1))  # fmt: skip
        self.bn = nn.BatchNorm2d(out_channels)
        self.drop = nn.Dropout(0.0)  # MMAction2's unit_tcn has one (p=0); the original has none
        conv_init(self.conv)
        bn_init(self.bn, 1)

    def forward(self, x):
        return self.drop(self.bn(self.conv(x)))


def _zero(x):
    return 0


def _identity(x):
    return x


# ---- lshiwjx/2s-AGCN --------------------------------------------------------------------


class unit_gcn(nn.Module):  # noqa: N801
    def __init__(self, in_channels, out_channels, A, coff_embedding=4, num_subset=3):
        super().__init__()
        inter_channels = out_channels // coff_embedding
        self.inter_c = inter_channels
        self.PA = nn.Parameter(torch.from_numpy(A.astype(np.float32)))
        nn.init.constant_(self.PA, 1e-6)
        self.register_buffer("A", torch.from_numpy(A.astype(np.float32)), persistent=False)
        self.num_subset = num_subset

        self.conv_a = nn.ModuleList()
        self.conv_b = nn.ModuleList()
        self.conv_d = nn.ModuleList()
        for _ in range(self.num_subset):
            self.conv_a.append(nn.Conv2d(in_channels, inter_channels, 1))
            self.conv_b.append(nn.Conv2d(in_channels, inter_channels, 1))
            self.conv_d.append(nn.Conv2d(in_channels, out_channels, 1))

        if in_channels != out_channels:
            self.down = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1), nn.BatchNorm2d(out_channels))
        else:
            self.down = _identity

        self.bn = nn.BatchNorm2d(out_channels)
        self.soft = nn.Softmax(-2)
        self.relu = nn.ReLU()

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                conv_init(m)
            elif isinstance(m, nn.BatchNorm2d):
                bn_init(m, 1)
        bn_init(self.bn, 1e-6)
        for i in range(self.num_subset):
            conv_branch_init(self.conv_d[i], self.num_subset)

    def forward(self, x):
        N, C, T, V = x.size()
        A = self.A + self.PA

        y = None
        for i in range(self.num_subset):
            A1 = self.conv_a[i](x).permute(0, 3, 1, 2).contiguous().view(N, V, self.inter_c * T)
            A2 = self.conv_b[i](x).view(N, self.inter_c * T, V)
            A1 = self.soft(torch.matmul(A1, A2) / A1.size(-1))  # N V V
            A1 = A1 + A[i]
            A2 = x.view(N, C * T, V)
            z = self.conv_d[i](torch.matmul(A2, A1).view(N, C, T, V))
            y = z + y if y is not None else z

        y = self.bn(y)
        y += self.down(x)
        return self.relu(y)


class TCN_GCN_unit(nn.Module):  # noqa: N801
    def __init__(self, in_channels, out_channels, A, stride=1, residual=True):
        super().__init__()
        self.gcn1 = unit_gcn(in_channels, out_channels, A)
        self.tcn1 = unit_tcn(out_channels, out_channels, stride=stride)
        self.relu = nn.ReLU()
        if not residual:
            self.residual = _zero
        elif (in_channels == out_channels) and (stride == 1):
            self.residual = _identity
        else:
            self.residual = unit_tcn(in_channels, out_channels, kernel_size=1, stride=stride)

    def forward(self, x):
        x = self.tcn1(self.gcn1(x)) + self.residual(x)
        return self.relu(x)


class RefAGCN(nn.Module):
    """lshiwjx/2s-AGCN `Model`; `graph` is a key of GRAPHS."""

    def __init__(self, num_class=60, num_point=25, num_person=2, graph="ntu-2s-agcn", in_channels=3):
        super().__init__()
        A = spatial_graph(graph)
        assert A.shape[-1] == num_point
        self.data_bn = nn.BatchNorm1d(num_person * in_channels * num_point)

        self.l1 = TCN_GCN_unit(in_channels, 64, A, residual=False)
        self.l2 = TCN_GCN_unit(64, 64, A)
        self.l3 = TCN_GCN_unit(64, 64, A)
        self.l4 = TCN_GCN_unit(64, 64, A)
        self.l5 = TCN_GCN_unit(64, 128, A, stride=2)
        self.l6 = TCN_GCN_unit(128, 128, A)
        self.l7 = TCN_GCN_unit(128, 128, A)
        self.l8 = TCN_GCN_unit(128, 256, A, stride=2)
        self.l9 = TCN_GCN_unit(256, 256, A)
        self.l10 = TCN_GCN_unit(256, 256, A)

        self.fc = nn.Linear(256, num_class)
        nn.init.normal_(self.fc.weight, 0, math.sqrt(2.0 / num_class))
        bn_init(self.data_bn, 1)

    def forward(self, x):
        N, C, T, V, M = x.size()

        x = x.permute(0, 4, 3, 1, 2).contiguous().view(N, M * V * C, T)
        x = self.data_bn(x)
        x = x.view(N, M, V, C, T).permute(0, 1, 3, 4, 2).contiguous().view(N * M, C, T, V)

        x = self.l1(x)
        x = self.l2(x)
        x = self.l3(x)
        x = self.l4(x)
        x = self.l5(x)
        x = self.l6(x)
        x = self.l7(x)
        x = self.l8(x)
        x = self.l9(x)
        x = self.l10(x)

        c_new = x.size(1)
        x = x.view(N, M, c_new, -1)
        x = x.mean(3).mean(1)
        return self.fc(x)


# ---- MMAction2 AAGCN (gcn_attention=False) + GCNHead -------------------------------------


class unit_aagcn(nn.Module):  # noqa: N801
    """MMAction2's unit_aagcn with adaptive=True, attention=False."""

    def __init__(self, in_channels, out_channels, A, coff_embedding=4):
        super().__init__()
        inter_channels = out_channels // coff_embedding
        self.inter_c = inter_channels
        self.num_subset = A.shape[0]

        self.conv_d = nn.ModuleList()
        for _ in range(self.num_subset):
            self.conv_d.append(nn.Conv2d(in_channels, out_channels, 1))

        self.A = nn.Parameter(A)
        self.alpha = nn.Parameter(torch.zeros(1))
        self.conv_a = nn.ModuleList()
        self.conv_b = nn.ModuleList()
        for _ in range(self.num_subset):
            self.conv_a.append(nn.Conv2d(in_channels, inter_channels, 1))
            self.conv_b.append(nn.Conv2d(in_channels, inter_channels, 1))

        self.down = _identity
        if in_channels != out_channels:
            self.down = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1), nn.BatchNorm2d(out_channels))

        self.bn = nn.BatchNorm2d(out_channels)
        self.tan = nn.Tanh()
        self.relu = nn.ReLU(inplace=True)

        # init_cfg: BN 1 (the unit's own `bn` 1e-6), Kaiming fan_out on every Conv2d, ConvBranch on conv_d
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                conv_init(m)
            elif isinstance(m, nn.BatchNorm2d):
                bn_init(m, 1)
        bn_init(self.bn, 1e-6)
        for conv in self.conv_d:
            conv_branch_init(conv, self.num_subset)

    def forward(self, x):
        N, C, T, V = x.size()

        y = None
        for i in range(self.num_subset):
            A1 = self.conv_a[i](x).permute(0, 3, 1, 2).contiguous().view(N, V, self.inter_c * T)
            A2 = self.conv_b[i](x).view(N, self.inter_c * T, V)
            A1 = self.tan(torch.matmul(A1, A2) / A1.size(-1))  # N V V
            A1 = self.A[i] + A1 * self.alpha
            A2 = x.view(N, C * T, V)
            z = self.conv_d[i](torch.matmul(A2, A1).view(N, C, T, V))
            y = z + y if y is not None else z

        y = self.relu(self.bn(y) + self.down(x))
        return y


class AAGCNBlock(nn.Module):
    def __init__(self, in_channels, out_channels, A, stride=1, residual=True):
        super().__init__()
        self.gcn = unit_aagcn(in_channels, out_channels, A)
        self.tcn = unit_tcn(out_channels, out_channels, 9, stride=stride)
        self.relu = nn.ReLU()
        if not residual:
            self.residual = _zero
        elif (in_channels == out_channels) and (stride == 1):
            self.residual = _identity
        else:
            self.residual = unit_tcn(in_channels, out_channels, kernel_size=1, stride=stride)

    def forward(self, x):
        return self.relu(self.tcn(self.gcn(x)) + self.residual(x))


class AAGCN(nn.Module):
    def __init__(self, graph="ntu-mmaction2", in_channels=3, base_channels=64, num_person=2, num_stages=10,
                 inflate_stages=(5, 8), down_stages=(5, 8)):  # fmt: skip
        super().__init__()
        A = torch.tensor(spatial_graph(graph), dtype=torch.float32, requires_grad=False)
        self.register_buffer("A", A)
        self.data_bn = nn.BatchNorm1d(num_person * in_channels * A.size(1))

        modules = [AAGCNBlock(in_channels, base_channels, A.clone(), 1, residual=False)]
        for i in range(2, num_stages + 1):
            out_channels = base_channels * (1 + (i in inflate_stages))
            stride = 1 + (i in down_stages)
            modules.append(AAGCNBlock(base_channels, out_channels, A.clone(), stride=stride))
            base_channels = out_channels
        self.num_stages = num_stages
        self.gcn = nn.ModuleList(modules)

    def forward(self, x):
        N, M, T, V, C = x.size()
        x = x.permute(0, 1, 3, 4, 2).contiguous()
        x = self.data_bn(x.view(N, M * V * C, T))
        x = x.view(N, M, V, C, T).permute(0, 1, 3, 4, 2).contiguous().view(N * M, C, T, V)
        for i in range(self.num_stages):
            x = self.gcn[i](x)
        return x.reshape((N, M) + x.shape[1:])


class GCNHead(nn.Module):
    def __init__(self, num_classes, in_channels, head_key="fc"):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head_key = head_key
        fc = nn.Linear(in_channels, num_classes)
        nn.init.normal_(fc.weight, 0, 0.01)
        nn.init.constant_(fc.bias, 0)
        setattr(self, head_key, fc)

    def forward(self, x):
        N, M, C, T, V = x.shape
        x = self.pool(x.view(N * M, C, T, V)).view(N, M, C).mean(dim=1)
        return getattr(self, self.head_key)(x)


class RefMMAAGCN(nn.Module):
    """MMAction2 RecognizerGCN(backbone=AAGCN(gcn_attention=False), cls_head=GCNHead), as logits.

    `head_key="fc_cls"` gives pyskl's head name. Takes `(N, C, T, V, M)` (MMAction2 itself
    feeds the backbone `(N, M, T, V, C)`; the permutation is done here).
    """

    def __init__(self, num_class=60, num_point=25, num_person=2, graph="ntu-mmaction2", in_channels=3, head_key="fc"):
        super().__init__()
        self.backbone = AAGCN(graph=graph, in_channels=in_channels, num_person=num_person)
        assert self.backbone.A.shape[-1] == num_point
        self.cls_head = GCNHead(num_class, 256, head_key=head_key)

    def forward(self, x):
        return self.cls_head(self.backbone(x.permute(0, 4, 2, 3, 1)))
