"""Training loop, resume, checkpoints, metrics and the CLI on a tiny synthetic dataset."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure

from goectp import load_model, predict
from goectp.cli import main as cli_main
from goectp.data import graphs_from_records, parse_dielectric_dict
from goectp.evaluation import anisotropy, mean_eigenvalue, per_system_mae, tensor_metrics
from goectp.models import GoeCTPConfig
from goectp.training import TrainConfig, run_split, train
from goectp.training.augment import random_orthogonal, rotate_batch


def _dataset(n: int = 20, seed: int = 0) -> dict:
    """Rock-salt-like and tetragonal cells whose ε grows with the lattice constant (a learnable signal)."""
    gen = np.random.default_rng(seed)
    out = {}
    for i in range(n):
        a = gen.uniform(3.8, 5.0)
        c = a * gen.uniform(0.9, 1.4)
        s = Structure(Lattice.tetragonal(a, c), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
        eps = np.diag([a, a, c]) * 1.5
        out[f"id-{i}"] = {
            "structure": s.as_dict(),
            "total": eps.tolist(),
            "electronic": (eps / 2).tolist(),
            "ionic": (eps / 2).tolist(),
            "band_gap": 2.0,
        }
    return out


@pytest.fixture(scope="module")
def graph_set():
    return graphs_from_records(parse_dielectric_dict(_dataset()), progress=False)


def _tiny(**kw) -> GoeCTPConfig:
    return GoeCTPConfig(hidden=16, num_rbf=16, **kw)


def test_training_reduces_loss_and_saves_best_checkpoint(graph_set, tmp_path):
    from goectp.models import GoeCTP

    torch.manual_seed(0)
    model = GoeCTP(_tiny())
    graphs = graph_set.with_target("total")
    res = train(model, graphs[:16], graphs[16:], TrainConfig(epochs=8, batch_size=8, lr=3e-3, progress=False), tmp_path)
    losses = [h["train_loss"] for h in res["history"]]
    assert losses[-1] < losses[0]
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    assert best["config"]["hidden"] == 16 and best["meta"]["epoch"] == res["best_epoch"]
    assert best["meta"]["train_config"]["epochs"] == 8
    assert min(h["val_mae"] for h in res["history"]) == pytest.approx(res["best_val_mae"])


def test_resume_matches_uninterrupted_run(graph_set, tmp_path):
    from goectp.models import GoeCTP

    graphs = graph_set.with_target("total")
    cfg = TrainConfig(epochs=4, batch_size=8, progress=False, seed=3)
    torch.manual_seed(3)
    full = train(GoeCTP(_tiny()), graphs[:16], graphs[16:], cfg, tmp_path / "full")
    torch.manual_seed(3)
    train(GoeCTP(_tiny()), graphs[:16], graphs[16:], cfg, tmp_path / "r", stop_after=2)  # "interrupted"
    # a fresh process would rebuild the model; resume restores weights, optimiser, scheduler and RNG state
    torch.manual_seed(123)
    resumed = train(GoeCTP(_tiny()), graphs[:16], graphs[16:], cfg, tmp_path / "r", resume=True)
    np.testing.assert_allclose(
        [h["val_mae"] for h in resumed["history"]], [h["val_mae"] for h in full["history"]], rtol=1e-5
    )


def test_rotation_augmentation_rotates_everything_consistently(graph_set):
    from torch_geometric.data import Batch

    graphs = graph_set.with_target("total")[:3]
    batch = Batch.from_data_list(graphs)
    q = random_orthogonal(3, torch.Generator().manual_seed(0))
    assert torch.allclose(q @ q.transpose(-1, -2), torch.eye(3, dtype=q.dtype).expand(3, 3, 3), atol=1e-12)
    rot = rotate_batch(batch.clone(), q)
    np.testing.assert_allclose(torch.linalg.eigvalsh(rot.y).numpy(), torch.linalg.eigvalsh(batch.y).numpy(), atol=1e-10)
    np.testing.assert_allclose(rot.edge_vec.norm(dim=-1).numpy(), batch.edge_vec.norm(dim=-1).numpy(), atol=1e-10)
    model_cfg = _tiny()
    from goectp.models import GoeCTP

    model = GoeCTP(model_cfg).double().eval()  # with the frame, a rotated batch gives the rotated prediction
    with torch.no_grad():
        a, b = model(batch), model(rot)
    np.testing.assert_allclose(b.numpy(), (q @ a @ q.transpose(-1, -2)).numpy(), atol=1e-8)


def test_metrics_against_hand_computation():
    true = np.stack([np.eye(3) * 4, np.diag([2.0, 3.0, 6.0])])
    pred = true.copy()
    pred[0, 0, 0] += 0.9  # |Δ| mean = 0.1, ‖Δ‖_F = 0.9, rel = 0.9/sqrt(48) = 0.13
    m = tensor_metrics(pred, true)
    assert m["mae"] == pytest.approx(0.9 / 18)
    assert m["frobenius"] == pytest.approx(0.45)
    assert m["ewt_25"] == 1.0 and m["ewt_10"] == 0.5 and m["ewt_5"] == 0.5
    assert m["mae_eps_mean"] == pytest.approx(0.15)
    assert per_system_mae(pred, true, ["cubic", "orthorhombic"]) == pytest.approx(
        {"cubic": 0.1, "orthorhombic": 0.0, "all": 0.05}
    )
    assert anisotropy(true[1]) == pytest.approx(3.0) and mean_eigenvalue(true[1]) == pytest.approx(11 / 3)
    with pytest.raises(ValueError, match="NaN"):
        tensor_metrics(pred * np.nan, true)


def test_run_split_writes_metrics_and_predictions(graph_set, tmp_path):
    res = run_split(graph_set, _tiny(), TrainConfig(epochs=2, batch_size=8, progress=False), tmp_path)
    assert res["n_train"] == 16 and res["n_test"] == 2
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["test"]["all"]["n"] == 2 and "tetragonal" in saved["test"]["all"]["per_system"]
    z = np.load(tmp_path / "test_predictions.npz")
    assert z["pred"].shape == (2, 3, 3)


def test_cli_train_evaluate_predict(tmp_path, capsys):
    data = tmp_path / "data.json"
    data.write_text(json.dumps(_dataset(15, seed=1)))
    out = tmp_path / "run"
    assert (
        cli_main(
            [
                "train",
                "--data-file",
                str(data),
                "--splits",
                "0",
                "--epochs",
                "2",
                "--hidden",
                "16",
                "--out",
                str(out),
                "--batch-size",
                "8",
            ]
        )
        == 0
    )
    ckpt = out / "split0" / "best.pt"
    assert ckpt.exists()
    assert (
        cli_main(["evaluate", "--model", str(ckpt), "--data-file", str(data), "--out", str(tmp_path / "ev" / "report")])
        == 0
    )
    assert (tmp_path / "ev" / "report.png").stat().st_size > 1000
    assert "MAE per crystal system" in (tmp_path / "ev" / "report.md").read_text()
    cif = tmp_path / "NaCl.cif"
    s = Structure(Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    s.to(filename=str(cif))
    capsys.readouterr()
    assert cli_main(["predict", str(cif), "--model", str(ckpt)]) == 0
    text = capsys.readouterr().out
    assert "eigenvalues" in text and "anisotropy" in text
    expected = predict(s, load_model(ckpt))[0]
    assert f"{expected[0, 0]:9.3f}" in text
    bad = tmp_path / "bad.cif"
    bad.write_text("data_x\n_cell_length_a 5\n")
    assert cli_main(["predict", str(bad), "--model", str(ckpt)]) == 1
    assert "could not parse" in capsys.readouterr().err


def test_predict_names_the_tensor_and_gives_refractive_indices_for_an_eps_inf_model(tmp_path, capsys):
    """A model trained on ε∞ (``--target electronic``) says so, and its eigenvalues give n = √λ; an ensemble
    refuses to average members that predict different tensors."""
    from goectp.checkpoint import save_checkpoint
    from goectp.models import GoeCTP, prediction_target

    torch.manual_seed(0)
    model = GoeCTP(GoeCTPConfig(hidden=16)).eval()
    folder = tmp_path / "eps-inf"
    for k in range(2):
        save_checkpoint(folder / f"split{k}.pt", model, train_config={"target": "electronic", "split_seed": k})
    assert prediction_target(load_model(folder)) == "electronic"
    cif = tmp_path / "NaCl.cif"
    s = Structure(Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    s.to(filename=str(cif))
    capsys.readouterr()
    assert cli_main(["predict", str(cif), "--model", str(folder), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["target"] == "electronic"
    np.testing.assert_allclose(row["refractive_indices"], np.sqrt(np.clip(row["eigenvalues"], 0, None)), rtol=1e-12)
    assert cli_main(["predict", str(cif), "--model", str(folder)]) == 0
    assert "ε∞ (electronic" in capsys.readouterr().out
    # evaluate compares with the tensor the model predicts, and refuses another one
    data = tmp_path / "data.json"
    records = _dataset(6, seed=3)
    for r in records.values():
        r["electronic"] = (np.array(r["electronic"]) * 0.5).tolist()  # ε∞ ≠ total/2 = ionic: a wrong pick shows
    data.write_text(json.dumps(records))
    ev = ["evaluate", "--model", str(folder), "--data-file", str(data), "--out", str(tmp_path / "ev" / "r")]
    assert cli_main(ev) == 0
    reported = json.loads((tmp_path / "ev" / "r.json").read_text())["metrics"]["mae"]
    gs = graphs_from_records(parse_dielectric_dict(records), progress=False)
    pred = predict([parse_dielectric_dict(records)[i].structure for i in range(6)], load_model(folder))
    assert reported == pytest.approx(np.abs(pred - gs.targets("electronic")).mean(), rel=1e-4)
    assert cli_main([*ev, "--target", "total"]) == 2
    assert "predicts the electronic tensor" in capsys.readouterr().err
    save_checkpoint(folder / "split2.pt", model, train_config={"target": "total"})
    with pytest.raises(ValueError, match="predict different tensors"):
        load_model(folder)
    save_checkpoint(tmp_path / "odd.pt", model, train_config={"target": "magnetic"})
    with pytest.raises(ValueError, match="unknown prediction target 'magnetic'"):
        prediction_target(load_model(tmp_path / "odd.pt"))


def test_cli_reports_missing_model(capsys, tmp_path):
    cif = tmp_path / "x.cif"
    Structure(Lattice.cubic(4), ["Na"], [[0, 0, 0]]).to(filename=str(cif))
    assert cli_main(["predict", str(cif), "--model", "no-such-model"]) == 2
    assert "no shipped model named" in capsys.readouterr().err


def test_cli_train_splits_in_parallel_on_dask_equals_sequential_and_resumes(tmp_path, capsys):
    """--workers 2 trains the splits in two Dask worker processes: the same weights as one after the other (seeded
    per split), and a re-run skips the finished splits."""
    import torch

    data = tmp_path / "data.json"
    data.write_text(json.dumps(_dataset(15, seed=1)))
    common = [
        "train",
        "--data-file",
        str(data),
        "--splits",
        "0",
        "1",
        "--epochs",
        "2",
        "--hidden",
        "16",
        "--batch-size",
        "8",
    ]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each Dask worker trains: another thread count sums in another order
    try:
        assert cli_main([*common, "--out", str(tmp_path / "seq")]) == 0
    finally:
        torch.set_num_threads(threads)
    assert cli_main([*common, "--out", str(tmp_path / "par"), "--workers", "2"]) == 0
    for split in (0, 1):
        a = torch.load(tmp_path / "seq" / f"split{split}" / "best.pt", weights_only=True)["state_dict"]
        b = torch.load(tmp_path / "par" / f"split{split}" / "best.pt", weights_only=True)["state_dict"]
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    capsys.readouterr()
    assert cli_main([*common, "--out", str(tmp_path / "par"), "--workers", "2"]) == 0
    assert capsys.readouterr().out.count("not trained again") == 2


def test_gpu_check_skips_cleanly_without_cuda():
    import subprocess
    import sys
    from pathlib import Path

    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA present: run benchmarks/speed/gpu_check.py itself")
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "speed" / "gpu_check.py"
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "skipped, no CUDA device" in done.stdout


def test_training_loss_is_huber_or_the_squared_error():
    from goectp.training.config import TrainConfig
    from goectp.training.loop import training_loss

    pred = torch.tensor([[0.0, 0.5], [3.0, -2.0]])
    target = torch.zeros(2, 2)
    # Huber(δ=1): ½x² inside, |x| - ½ outside → (0 + 0.125 + 2.5 + 1.5) / 4
    assert training_loss(pred, target, TrainConfig()).item() == pytest.approx(4.125 / 4)
    assert training_loss(pred, target, TrainConfig(loss="mse")).item() == pytest.approx((0.25 + 9 + 4) / 4)
    with pytest.raises(ValueError, match="unknown loss"):
        TrainConfig(loss="l3")


def test_the_relative_mean_term_adds_the_relative_error_of_the_trace(tmp_path):
    """model_loss = Huber(ε, y) + w · mean |tr ε − tr y| / tr y; the term needs a target with ε̄ > 0."""
    from types import SimpleNamespace

    from goectp.training.config import TrainConfig
    from goectp.training.loop import model_loss, training_loss

    pred = torch.stack([torch.diag(torch.tensor([2.0, 2.0, 2.0])), torch.diag(torch.tensor([10.0, 12.0, 14.0]))])
    target = torch.stack([torch.eye(3) * 4.0, torch.eye(3) * 10.0])  # traces 12 and 30; predicted 6 and 36

    class Head(torch.nn.Module):  # a "model" that returns fixed predictions, with the plain head's config
        config = SimpleNamespace(decompose=False, log_head=False)

        def forward(self, batch):
            return pred

    batch = SimpleNamespace(y=target)
    plain = model_loss(Head(), batch, TrainConfig()).item()
    assert plain == pytest.approx(training_loss(pred, target, TrainConfig()).item())
    weighted = model_loss(Head(), batch, TrainConfig(relative_mean_weight=2.0)).item()
    assert weighted == pytest.approx(plain + 2.0 * (6 / 12 + 6 / 30) / 2)
    with pytest.raises(ValueError, match="not ionic"):
        TrainConfig(relative_mean_weight=1.0, target="ionic")
    with pytest.raises(ValueError, match=">= 0"):
        TrainConfig(relative_mean_weight=-1.0)
    Head.config = SimpleNamespace(decompose=True, log_head=False)
    with pytest.raises(ValueError, match="plain tensor head"):
        model_loss(Head(), batch, TrainConfig(relative_mean_weight=1.0))
    from goectp.training.loop import train

    with pytest.raises(ValueError, match="plain tensor head"):  # refused before training starts
        train(Head(), [], [], TrainConfig(relative_mean_weight=1.0), out_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()
    with pytest.raises(ValueError, match="decompose learns the total tensor"):  # also before any folder is made
        train(Head(), [], [], TrainConfig(target="ionic"), out_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_weight_average_follows_the_recursion_with_warm_up():
    from goectp.training.ema import ExponentialMovingAverage

    model = torch.nn.Linear(2, 1, bias=False)
    ema = ExponentialMovingAverage(model, decay=0.9)
    expected = model.weight.detach().clone()
    for step, value in enumerate([1.0, -2.0, 4.0, 0.5], start=1):
        with torch.no_grad():
            model.weight.fill_(value)
        ema.update(model)
        d = min(0.9, (1 + step) / (10 + step))  # 0.18, 0.25, 0.31, 0.36: the warm-up, then 0.9
        expected = d * expected + (1 - d) * value
        torch.testing.assert_close(ema.model.weight, expected)
    assert not ema.model.weight.requires_grad
    with pytest.raises(ValueError, match="decay"):
        ExponentialMovingAverage(model, decay=1.0)
    for bad in (0.0, 1.0, 1.5):  # the config refuses it before any training starts (the CLI's error)
        with pytest.raises(ValueError, match="ema_decay"):
            TrainConfig(ema_decay=bad)


def test_training_with_a_weight_average_saves_the_average_and_resumes_it(graph_set, tmp_path):
    from goectp.checkpoint import load_checkpoint
    from goectp.models import GoeCTP

    graphs = graph_set.with_target("total")
    one_epoch = TrainConfig(epochs=1, batch_size=8, progress=False, seed=3, ema_decay=0.9)
    train(GoeCTP(_tiny()), graphs[:16], graphs[16:], one_epoch, tmp_path / "one")  # best epoch = last epoch
    last = torch.load(tmp_path / "one" / "last.pt", weights_only=True)
    assert last["ema"]["steps"] == 2  # 16 training graphs in batches of 8
    raw, averaged = last["state_dict"], last["ema"]["weights"]
    assert any(not torch.equal(raw[k], averaged[k]) for k in raw)  # the average is not the raw weights
    best = load_checkpoint(tmp_path / "one" / "best.pt")
    for k, v in best.state_dict().items():  # best.pt holds the average
        torch.testing.assert_close(v, averaged[k].to(v.dtype))

    cfg = TrainConfig(epochs=4, batch_size=8, progress=False, seed=3, ema_decay=0.9)
    torch.manual_seed(3)
    full = train(GoeCTP(_tiny()), graphs[:16], graphs[16:], cfg, tmp_path / "full")
    torch.manual_seed(3)
    train(GoeCTP(_tiny()), graphs[:16], graphs[16:], cfg, tmp_path / "r", stop_after=2)
    torch.manual_seed(123)
    resumed = train(GoeCTP(_tiny()), graphs[:16], graphs[16:], cfg, tmp_path / "r", resume=True)
    np.testing.assert_allclose(
        [h["val_mae"] for h in resumed["history"]], [h["val_mae"] for h in full["history"]], rtol=1e-5
    )

    plain = TrainConfig(epochs=4, batch_size=8, progress=False, seed=3)
    train(GoeCTP(_tiny()), graphs[:16], graphs[16:], plain, tmp_path / "plain", stop_after=1)
    with pytest.raises(ValueError, match="no weight average"):
        train(GoeCTP(_tiny()), graphs[:16], graphs[16:], cfg, tmp_path / "plain", resume=True)
