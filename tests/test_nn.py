"""One test group per layer of goectp.nn: shapes, a hand-computed small case, reset_parameters, repr."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from goectp.nn import GaussianRBF, LatticeEdgeLayer, MatformerLayer, MLPMessageLayer, ScalarHead, TensorHead


@pytest.fixture(autouse=True)
def _float64():
    """float64 for tight comparisons with the hand computations below (restored after each test)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def _set(linear: nn.Linear, weight: list, bias: list | None = None) -> None:
    with torch.no_grad():
        linear.weight.copy_(torch.tensor(weight))
        linear.bias.copy_(torch.tensor(bias) if bias is not None else torch.zeros_like(linear.bias))


def _changes_on_reset(module: nn.Module) -> bool:
    before = {k: v.clone() for k, v in module.state_dict().items()}
    torch.manual_seed(123)
    module.reset_parameters()
    return any(not torch.equal(before[k], v) for k, v in module.state_dict().items() if v.is_floating_point())


# ------------------------------------------------------------------------------------------------------ GaussianRBF
def test_rbf_shapes_and_values():
    rbf = GaussianRBF(0.0, 2.0, 3)  # centres 0, 1, 2; gamma = 1
    assert rbf(torch.zeros(4, 5)).shape == (4, 5, 3)
    torch.testing.assert_close(rbf(torch.tensor([0.5])), torch.tensor([[math.exp(-0.25)] * 2 + [math.exp(-2.25)]]))
    assert repr(rbf) == "GaussianRBF(start=0, stop=2, num=3)"
    rbf.reset_parameters()  # nothing learnable: a no-op
    with pytest.raises(ValueError, match="at least 2"):
        GaussianRBF(0.0, 1.0, 1)


# ------------------------------------------------------------------------------------------------------ MLPMessageLayer
def test_mlp_message_layer_hand_computed():
    layer = MLPMessageLayer(1, 1).eval()  # eval: BatchNorm uses its running stats (mean 0, var 1) = identity
    _set(layer.lin, [[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])  # gate = h_i, message = h_j + e_ij
    h = torch.tensor([[0.5], [-1.0]])
    edge_index = torch.tensor([[1, 0, 1], [0, 1, 0]])  # 1→0 twice (two periodic images), 0→1 once
    edge_attr = torch.tensor([[0.0], [2.0], [1.0]])
    out = layer(h, edge_index, edge_attr)
    sig, sp = torch.sigmoid, nn.functional.softplus
    bn = 1 / math.sqrt(1 + layer.norm.eps)
    m0 = sig(torch.tensor(0.5)) * (sp(torch.tensor(-1.0)) + sp(torch.tensor(0.0)))  # both images of atom 1
    m1 = sig(torch.tensor(-1.0)) * sp(torch.tensor(0.5 + 2.0))
    torch.testing.assert_close(out, sp(torch.stack([0.5 + bn * m0, -1.0 + bn * m1]).unsqueeze(-1)))
    assert repr(layer) == "MLPMessageLayer(1, edge_dim=1)"


def test_mlp_message_layer_is_one_linear_map_of_the_concatenation():
    """The node parts applied per node and gathered equal ``W (h_i | h_j | e) + b`` on each edge, gradients too."""
    torch.manual_seed(0)
    layer = MLPMessageLayer(6, 4).eval()
    h = torch.randn(5, 6, requires_grad=True)
    edge_attr = torch.randn(14, 4, requires_grad=True)
    edge_index = torch.randint(0, 5, (2, 14))
    out = layer(h, edge_index, edge_attr)
    src, dst = edge_index
    gate, msg = layer.lin(torch.cat([h[dst], h[src], edge_attr], dim=-1)).chunk(2, dim=-1)
    agg = torch.zeros(5, 6).index_add(0, dst, torch.sigmoid(gate) * nn.functional.softplus(msg))
    reference = nn.functional.softplus(h + layer.norm(agg))
    torch.testing.assert_close(out, reference)
    grads = torch.autograd.grad(out.square().sum(), [h, edge_attr, layer.lin.weight])
    expected = torch.autograd.grad(reference.square().sum(), [h, edge_attr, layer.lin.weight])
    for got, want in zip(grads, expected):
        torch.testing.assert_close(got, want)


def test_mlp_message_layer_shapes_and_reset():
    layer = MLPMessageLayer(8, 4)
    out = layer(torch.randn(5, 8), torch.randint(0, 5, (2, 12)), torch.randn(12, 4))
    assert out.shape == (5, 8)
    assert _changes_on_reset(layer)


# ------------------------------------------------------------------------------------------------------ MatformerLayer
def _identity_matformer() -> MatformerLayer:
    layer = MatformerLayer(2, heads=2).eval()
    for lin in (layer.q, layer.k, layer.e):
        _set(lin, [[1.0, 0.0], [0.0, 1.0]])
    return layer


def test_matformer_attention_is_one_weight_per_edge_and_head_hand_computed():
    layer = _identity_matformer()
    h = torch.tensor([[1.0, 2.0], [3.0, -1.0]])
    edge_index = torch.tensor([[1], [0]])  # 1 → 0
    edge_attr = torch.tensor([[0.5, 1.0]])
    alpha = layer.attention(h, edge_index, edge_attr)
    # head 0: q=1, k=3, e=0.5 → (1*3 + 1*0.5)/sqrt(2); head 1: q=2, k=-1, e=1 → (-2 + 2)/sqrt(2) = 0
    torch.testing.assert_close(alpha, torch.sigmoid(torch.tensor([[3.5 / math.sqrt(2), 0.0]])))


def test_matformer_heads_are_independent():
    layer = _identity_matformer()
    h = torch.tensor([[1.0, 2.0], [3.0, -1.0]])
    edge_index, edge_attr = torch.tensor([[1], [0]]), torch.tensor([[0.5, 1.0]])
    a = layer.attention(h, edge_index, edge_attr)
    b = layer.attention(h + torch.tensor([[0.0, 0.0], [0.0, 5.0]]), edge_index, edge_attr)  # head 1's key only
    assert a[0, 0] == b[0, 0] and a[0, 1] != b[0, 1]


def test_matformer_forward_matches_a_per_edge_loop():
    torch.manual_seed(0)
    layer = MatformerLayer(8, heads=4).eval()
    h, e = torch.randn(4, 8), torch.randn(6, 8)
    edge_index = torch.tensor([[1, 2, 3, 0, 0, 1], [0, 0, 0, 1, 2, 3]])
    out = layer(h, edge_index, e)
    alpha = layer.attention(h, edge_index, e)
    agg = torch.zeros(4, 16)
    for n, (j, i) in enumerate(edge_index.T.tolist()):
        v = layer.ln_msg(layer.v(torch.cat([h[i], h[j], e[n]])))
        agg[i] += torch.cat([alpha[n, hd] * v[4 * hd : 4 * hd + 4] for hd in range(4)])
    torch.testing.assert_close(out, h + nn.functional.softplus(layer.norm(layer.out(agg))))
    assert out.shape == (4, 8) and alpha.shape == (6, 4) and ((alpha > 0) & (alpha < 1)).all()


def test_matformer_checks_heads_and_resets():
    with pytest.raises(ValueError, match="divisible"):
        MatformerLayer(10, heads=4)
    layer = MatformerLayer(8, heads=2)
    assert repr(layer) == "MatformerLayer(8, heads=2)" and _changes_on_reset(layer)


# ----------------------------------------------------------------------------------------------- LatticeEdgeLayer
def test_lattice_edge_layer_shapes_and_softmax_over_the_three_vectors():
    torch.manual_seed(1)
    layer = LatticeEdgeLayer(8, num_rbf=4)
    e, vec = torch.randn(5, 8), torch.randn(5, 3)
    lattice = (torch.eye(3) * 4.0).expand(5, 3, 3)
    assert layer(e, vec, lattice).shape == (5, 8)
    # hand-computed case: q = k = 0 → uniform attention 1/3 over the lattice vectors
    for lin in (layer.q, layer.k):
        _set(lin, torch.zeros(8, 8).tolist())
    lat = lattice.transpose(-1, -2)
    cos = torch.einsum("ex,ekx->ek", vec / vec.norm(dim=-1, keepdim=True), lat) / lat.norm(dim=-1)
    a = nn.functional.silu(layer.a(torch.cat([layer.rbf_cos(cos), layer.rbf_len(lat.norm(dim=-1))], dim=-1)))
    ctx = layer.v(a).mean(dim=1)
    expected = e + nn.functional.softplus(layer.ln(layer.out(torch.cat([e, ctx], dim=-1))))
    torch.testing.assert_close(layer(e, vec, lattice), expected)
    assert repr(layer) == "LatticeEdgeLayer(8, num_rbf=4, max_length=20)" and _changes_on_reset(layer)


# ------------------------------------------------------------------------------------------------------ heads
def _constant_mlp(head: nn.Module, values: list[float]) -> None:
    """Make the head's MLP output ``values`` whatever its input (last layer: zero weight, bias = values)."""
    last = head.mlp[-1]
    _set(last, torch.zeros_like(last.weight).tolist(), values)


def test_tensor_head_matches_its_docstring():
    head = TensorHead(4)
    a = torch.tensor([[1.0, 2.0, 0.0], [0.0, 3.0, 1.0], [4.0, 0.0, 5.0]])
    _constant_mlp(head, a.flatten().tolist())
    head.scale.fill_(2.0)
    head.shift.fill_(0.5)
    c, s = math.cos(0.3), math.sin(0.3)
    frame = torch.tensor([[[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]])
    out = head(torch.randn(1, 4), frame)
    torch.testing.assert_close(out[0], 2.0 * frame[0] @ (0.5 * (a + a.T)) @ frame[0].T + 0.5 * torch.eye(3))
    torch.testing.assert_close(out, out.transpose(-1, -2))


def test_positive_definite_tensor_head_ignores_the_shift():
    head = TensorHead(4, positive_definite=True)
    a = torch.tensor([[1.0, 0.0, 0.0], [2.0, 1.0, 0.0], [0.0, -1.0, 3.0]])
    _constant_mlp(head, a.flatten().tolist())
    head.scale.fill_(2.0)
    head.shift.fill_(100.0)
    frame = torch.eye(3).unsqueeze(0)
    out = head(torch.randn(1, 4), frame)[0]
    torch.testing.assert_close(out, torch.eye(3) + 2.0 * a @ a.T)
    assert torch.linalg.eigvalsh(out).min() >= 1.0 - 1e-12


def test_heads_shapes_reset_and_repr():
    head = TensorHead(8)
    assert head(torch.randn(3, 8), torch.eye(3).expand(3, 3, 3)).shape == (3, 3, 3)
    head.scale.fill_(7.0)
    assert _changes_on_reset(head) and head.scale == 7.0  # the target statistics are kept
    scalar = ScalarHead(8)
    _constant_mlp(scalar, [1.5])
    scalar.scale.fill_(2.0)
    scalar.shift.fill_(-1.0)
    torch.testing.assert_close(scalar(torch.randn(3, 8)), torch.full((3,), 2.0))
    assert repr(head) == "TensorHead(8, positive_definite=False)" and repr(scalar) == "ScalarHead(8)"
    assert _changes_on_reset(scalar)


def test_goectp_edge_embedding_split_into_radial_and_direction_parts():
    """``_radial`` (computed once for all frames) + the direction part is ``edge_embed(RBF(|r|) | r/|r|)``."""
    from goectp.models.goectp import GoeCTP, GoeCTPConfig

    torch.manual_seed(1)
    model = GoeCTP(GoeCTPConfig(hidden=8, num_rbf=6))
    vec = torch.randn(10, 3) * 3
    dist = vec.norm(dim=-1, keepdim=True)
    expected = model.edge_embed(torch.cat([model.rbf(dist[:, 0]), vec / dist], dim=-1))
    torch.testing.assert_close(model._edge_features(vec, model._radial(vec)), expected)
