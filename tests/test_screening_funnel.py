"""The screening funnel: a cheap model ranks the pool, a better one re-scores the top of each list."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from test_screening import _save_ensemble, pool_records, run_opts, write_json_gz

from goectp.screening.run import run_screening

STATS = ["eps_mean", "eps_mean_std", "anisotropy", "anisotropy_std"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    cheap = _save_ensemble(tmp_path_factory.mktemp("cheap"), n=2, scale=0.2, positive_definite=True)
    good = _save_ensemble(tmp_path_factory.mktemp("good"), n=3, scale=0.3, positive_definite=True, num_rbf=16)
    return cheap, good


def test_second_stage_rescores_the_top_of_each_list_and_ranks_again(tmp_path, models):
    cheap, good = models
    pool = write_json_gz(tmp_path / "pool.json.gz", pool_records(30))
    funnel = run_screening(run_opts(pool, cheap, tmp_path / "funnel", top=3, rescore_model=good, rescore_top=6))
    single_cheap = run_screening(run_opts(pool, cheap, tmp_path / "cheap", top=6))
    single_good = run_screening(run_opts(pool, good, tmp_path / "good", top=3))
    results = funnel.rankings.results.set_index("id")
    # exactly the first stage's top-6 of each list were re-scored, with the good model's numbers
    first = set(single_cheap.rankings.top_high_k["id"]) | set(single_cheap.rankings.top_anisotropy["id"])
    rescored = set(results.index[results["scored_by"] == str(good)])
    assert rescored == first and funnel.summary["rescore"]["n_rescored"] == len(first)
    good_rows = single_good.rankings.results.set_index("id")
    pd.testing.assert_frame_equal(
        results.loc[sorted(rescored), STATS],
        good_rows.loc[sorted(rescored), STATS],
        check_exact=False,
        rtol=1e-5,
        atol=1e-6,
    )  # float32 members: another batch composition moves the last digits (≤ 1e-5; a σ of ~1e-7 is that noise itself)
    others = sorted(set(results.index) - rescored)
    cheap_rows = single_cheap.rankings.results.set_index("id")
    pd.testing.assert_frame_equal(results.loc[others, STATS], cheap_rows.loc[others, STATS], check_exact=False)
    # the final lists are ranked on the re-scored rows
    assert set(funnel.rankings.top_high_k["id"]) <= rescored and set(funnel.rankings.top_anisotropy["id"]) <= rescored
    summary = json.loads((tmp_path / "funnel" / "summary.json").read_text())
    assert summary["rescore"]["model"] == str(good) and summary["rescore"]["top"] == 6
    assert (tmp_path / "funnel" / "rescore" / "work").is_dir()


def test_rescore_top_must_cover_the_lists(tmp_path, models):
    cheap, good = models
    with pytest.raises(ValueError, match="rescore_top must be at least the list size"):
        run_opts(tmp_path / "pool.json.gz", cheap, tmp_path / "x", top=10, rescore_model=good, rescore_top=5)


def test_goectp_screen_runs_the_funnel_from_the_command_line(tmp_path, models, capsys):
    from goectp.cli import main

    cheap, good = models
    pool = write_json_gz(tmp_path / "pool.json.gz", pool_records(12))
    args = ["screen", "--pool", str(pool), "--model", str(cheap), "--rescore-model", str(good), "--rescore-top", "4"]
    args += ["--top", "2", "--no-dask", "--out", str(tmp_path / "out"), "--exclude-training", "none"]
    args += ["--reference", "none", "--no-progress", "--symprec", "0"]
    assert main(args) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["rescore"]["model"] == str(good) and 4 <= summary["rescore"]["n_rescored"] <= 8
    capsys.readouterr()
    assert args[7:9] == ["--rescore-top", "4"]
    assert main([*args[:7], "--rescore-top", "1", *args[9:]]) == 1  # fewer than --top: refused
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: rescore_top must be at least the list size top=2 when a rescore model is given, got 1"]


def _physics_screen(tmp_path, model, n: int, physics_top: int, top: int) -> list[str]:
    """``goectp screen`` arguments: ``n`` candidates scored by ``model``, the physics stage on the ``physics_top``
    best of a ``top``-long high-κ list (every band gap eligible), single process, into ``tmp_path/out``."""
    pool = write_json_gz(tmp_path / "pool.json.gz", pool_records(n))
    args = ["screen", "--pool", str(pool), "--model", str(model), "--physics-top", str(physics_top), "--top", str(top)]
    args += ["--no-dask", "--out", str(tmp_path / "out"), "--exclude-training", "none", "--reference", "none"]
    return [*args, "--no-progress", "--symprec", "0", "--min-gap", "-1"]


def test_goectp_screen_physics_top_reranks_the_high_k_list(tmp_path, models, monkeypatch, capsys):
    """`--physics-top N` wiring: the shipped physics model is asked for the N best of the high-κ list (a stand-in
    here that reverses their order), the list is written re-ranked with its columns, the summary says the cost."""
    from types import SimpleNamespace

    from goectp.cli import main
    from goectp.physics import model as physics_model

    asked = []

    class Reverse:
        config = SimpleNamespace(rule="stand-in", sigma_factor=lambda used, unstable: 1.0)  # the default's σ as it is

        def correct(self, structures, totals, forces=None):
            assert totals.shape == (1, 3, 3)  # the screen's own tensor, not predicted again
            asked.append(len(structures[0]))
            return [{"physics_used": True, "physics_skipped": None, "eps_physics_mean": 1e4 * len(asked)}]

    monkeypatch.setattr(physics_model.PhysicsModel, "load", classmethod(lambda cls, path=None: Reverse()))
    assert main(_physics_screen(tmp_path, models[0], n=12, physics_top=3, top=5)) == 0
    assert "physics stage: the top 3 of the high-k list" in capsys.readouterr().out
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["physics"]["top"] == 3 and summary["physics"]["n_used"] == 3 and len(asked) == 3
    top = pd.read_csv(tmp_path / "out" / "top_high_k.csv")
    assert list(top["rank_physics"]) == [1, 2, 3, 4, 5]
    assert list(top["rank"][:3]) == [3, 2, 1]  # the last asked gets the largest corrected ε̄: the order reversed
    assert list(top["eps_mean_physics"][:3]) == [3e4, 2e4, 1e4] and top["eps_mean_physics"][3:].isna().all()


def test_goectp_screen_without_model_is_the_funnel(tmp_path):
    """No --model: fast ranks the pool and default re-scores the 200 best of each list (at least --top); a --model
    given scores every candidate with it, unless a --rescore-model is asked for too."""
    import argparse

    from goectp.cli.screen import FUNNEL, add_arguments, options_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    base = ["--pool", str(tmp_path / "pool.json.gz")]
    opts = options_from_args(parser.parse_args(base))
    assert (opts.model, opts.rescore_model, opts.rescore_top) == FUNNEL == ("fast", "default", 200)
    assert options_from_args(parser.parse_args([*base, "--top", "300"])).rescore_top == 300
    single = options_from_args(parser.parse_args([*base, "--model", "default"]))
    assert (single.model, single.rescore_model, single.rescore_top) == ("default", None, 0)
    mine = options_from_args(parser.parse_args([*base, "--model", "x", "--rescore-model", "y", "--rescore-top", "70"]))
    assert (mine.model, mine.rescore_model, mine.rescore_top) == ("x", "y", 70)


def test_physics_stage_without_its_model_keeps_the_lists(tmp_path, models, monkeypatch, capsys):
    """A missing physics model (no assets/physics, or no sevenn) skips the stage with a one-line reason: the learned
    stages' lists are still written, the summary says why."""
    from goectp.cli import main
    from goectp.physics import model as physics_model

    def missing(cls, path=None):
        raise FileNotFoundError("no physics model at /nowhere/physics.json")

    monkeypatch.setattr(physics_model.PhysicsModel, "load", classmethod(missing))
    assert main(_physics_screen(tmp_path, models[0], n=8, physics_top=2, top=3)) == 0
    assert "physics stage skipped: no physics model at /nowhere/physics.json" in capsys.readouterr().out
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["physics"] == {"top": 2, "error": "no physics model at /nowhere/physics.json"}
    assert len(pd.read_csv(tmp_path / "out" / "top_high_k.csv")) == 3
