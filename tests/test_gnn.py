"Tests of scoreextrap.gnn: graph construction against brute force, samplers, and learning a smooth score."
import numpy as np, pytest, torch
from scipy import stats
from scoreextrap.gnn import knn_graph, sample_fanin, GNNExtrapolator, GCNRegressor, neighbor_loader_available
from scoreextrap.extrapolate import extrapolate
import warnings
with warnings.catch_warnings():  # torch-geometric's import triggers torch's torch.jit deprecation warning
    warnings.simplefilter("ignore", FutureWarning)
    from torch_geometric.utils import k_hop_subgraph

def smooth(n=1500, d=8, seed=0):
    rng = np.random.default_rng(seed)
    uv = rng.uniform(-3, 3, (n, 2))
    x = (uv @ rng.standard_normal((2, d)) + 0.05 * rng.standard_normal((n, d))).astype(np.float32)
    return x, np.sin(uv[:, 0]) + uv[:, 1] ** 2 / 4

@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_knn_graph_matches_brute_force(metric):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((150, 6)).astype(np.float32)
    ei, dist, nbr = knn_graph(x, k=5, metric=metric)
    e = x.astype(np.float64)
    if metric == "l2": D = np.sqrt(((e[:, None] - e[None]) ** 2).sum(-1))
    else:
        e = e / np.linalg.norm(e, axis=1, keepdims=True); D = 1 - e @ e.T
    np.fill_diagonal(D, np.inf)
    np.testing.assert_array_equal(nbr, np.argsort(D, 1)[:, :5])
    np.testing.assert_allclose(dist.numpy().reshape(150, 5), np.sort(D, 1)[:, :5], atol=1e-4)
    assert (ei[0] != ei[1]).all()  # no self loops

def test_fanin_full_fanout_equals_khop():
    x, _ = smooth(400)
    ei, dist, nbr = knn_graph(x, k=3)
    seeds = np.array([5, 17, 200])
    nodes, lei, _ = sample_fanin(nbr, dist.numpy().reshape(-1, 3), seeds, (3, 3), np.random.default_rng(0))
    sub, _, _, _ = k_hop_subgraph(torch.from_numpy(seeds), 2, ei, num_nodes=400)
    assert sorted(nodes.tolist()) == sub.tolist()

def test_learns_smooth_function_full_batch():
    x, t = smooth()
    sub = np.sort(np.random.default_rng(1).choice(len(x), 200, replace=False))
    p = extrapolate(x, sub, t[sub], k=10, hidden=(64, 32), epochs=120, extrapolator="gnn", lr=1e-2)
    rest = np.setdiff1d(np.arange(len(x)), sub)
    assert p.dtype == np.float64 and np.array_equal(p[sub], t[sub])
    assert stats.spearmanr(p[rest], t[rest]).statistic > 0.9

def test_seed_reproducible_and_history():
    x, t = smooth(600)
    sub = np.arange(0, 600, 5)
    ext = GNNExtrapolator(hidden=(16, 8), epochs=5)
    a = extrapolate(x, sub, t[sub], extrapolator=ext); h = ext.history_
    b = extrapolate(x, sub, t[sub], extrapolator="gnn", hidden=(16, 8), epochs=5)
    np.testing.assert_array_equal(a, b)
    assert list(h.columns) == ["epoch", "train_mse", "val_pearson", "seconds"] and len(h) == 5

def test_minibatch_fanin():
    x, t = smooth()
    sub = np.sort(np.random.default_rng(2).choice(len(x), 200, replace=False))
    p = extrapolate(x, sub, t[sub], k=10, hidden=(64, 32), epochs=10, extrapolator="gnn", lr=1e-2, batch_size=32, sampler="fanin", fanout=5)
    rest = np.setdiff1d(np.arange(len(x)), sub)
    assert stats.spearmanr(p[rest], t[rest]).statistic > 0.8

def test_bad_inputs():
    x, t = smooth(100)
    sub = np.arange(0, 100, 2)  # 50 subset samples: 5 validation nodes
    with pytest.raises(ValueError, match="subset_idx is empty"): extrapolate(x, [], [], extrapolator="gnn")
    with pytest.raises(ValueError, match="val_frac"): extrapolate(x, sub, t[sub], val_frac=1.0, extrapolator="gnn")
    with pytest.raises(ValueError, match="unknown sampler 'x'"): extrapolate(x, sub, t[sub], sampler="x", extrapolator="gnn")
    if not neighbor_loader_available():
        with pytest.raises(ValueError, match="pyg-lib or torch-sparse"): extrapolate(x, sub, t[sub], batch_size=8, sampler="neighbor", extrapolator="gnn")
    with pytest.raises(ValueError, match="graph has a neighbour table"):
        extrapolate(x, sub, t[sub], extrapolator="gnn", k=5, graph=knn_graph(x, k=3))
