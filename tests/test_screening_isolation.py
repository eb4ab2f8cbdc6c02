"""`goectp screen` parses and checks each candidate in goectp.isolation's bounded worker: a candidate that slips
past the checks and takes its process down (or past the memory limit) is rejected alone, and the screen goes on."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
import torch
from pymatgen.core import Lattice, Structure

from goectp.api import build_model, save_checkpoint
from goectp.screening.model_spec import load_model_spec
from goectp.screening.worker import Rejected, ScoringContext, parse_and_check, score_chunk


class _KillsItsReader:
    """Unpickled in the reader's process it ends that process: what a parser crash (or the kernel's OOM kill) does."""

    def __reduce__(self):
        return (os._exit, (3,))


class _HugeBuffer:
    """Unpickled it asks for 64 GB: past any worker's memory limit."""

    def __reduce__(self):
        return (bytearray, (64 * 2**30,))


def _rocksalt(a: float) -> dict:
    lat = Lattice(0.5 * a * np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]]))
    return Structure(lat, ["Mg", "O"], [[0, 0, 0], [0.5, 0.5, 0.5]]).as_dict()


@pytest.fixture(scope="module")
def context(tmp_path_factory) -> ScoringContext:
    folder = tmp_path_factory.mktemp("ensemble")
    for seed in range(2):
        torch.manual_seed(seed)
        model = build_model("goectp", hidden=16, positive_definite=True)
        model.set_target_stats(0.2, 5.0)
        save_checkpoint(folder / f"member{seed}.pt", model, seed=seed)
    return ScoringContext(model=load_model_spec(folder), symprec=None)


def _record(i: int, structure) -> dict:
    return {"id": f"cand-{i}", "structure": structure, "source": "test", "band_gap": 2.0}


def test_a_candidate_that_kills_its_reader_is_rejected_and_the_screen_goes_on(context):
    records = [_record(0, _rocksalt(4.2)), _record(1, _KillsItsReader()), _record(2, _rocksalt(4.4))]
    rows = score_chunk(records, context).set_index("id")
    assert rows.loc["cand-1", "status"] == "rejected"
    assert rows.loc["cand-1", "reason_code"] == "worker_died"
    assert "cand-1" in rows.loc["cand-1", "reason"]
    assert list(rows.loc[["cand-0", "cand-2"], "status"]) == ["scored", "scored"]
    # the next chunk gets a fresh worker
    assert score_chunk([_record(3, _rocksalt(4.3))], context).loc[0, "status"] == "scored"


def test_a_candidate_past_the_memory_limit_is_rejected_alone(context):
    rows = score_chunk([_record(0, _HugeBuffer()), _record(1, _rocksalt(4.2))], context).set_index("id")
    assert rows.loc["cand-0", "status"] == "rejected"
    assert rows.loc["cand-0", "reason_code"] == "out_of_memory"
    assert "memory" in rows.loc["cand-0", "reason"]
    assert rows.loc["cand-1", "status"] == "scored"


def test_the_checks_reason_codes_come_back_from_the_worker(context):
    overlapping = Structure(Lattice.cubic(4.0), ["Na", "Cl"], [[0, 0, 0], [0.01, 0, 0]]).as_dict()
    rows = score_chunk([_record(0, overlapping), _record(1, {"lattice": "nonsense"})], context).set_index("id")
    assert rows.loc["cand-0", "reason_code"] == "overlapping_atoms"
    assert rows.loc["cand-0", "n_sites"] == 2  # the parsed structure's figures are kept for a refused candidate
    assert rows.loc["cand-1", "reason_code"] == "unparseable"
    structure, refused = parse_and_check(_record(0, overlapping), 20)
    assert isinstance(refused, Rejected) and len(structure) == 2


def test_isolated_and_in_process_screens_agree_and_the_overhead_is_small(context):
    from dataclasses import replace

    records = [_record(i, _rocksalt(4.0 + 0.05 * i)) for i in range(12)]
    score_chunk(records[:1], context)  # the worker (forkserver) starts once per process
    in_process = replace(context, isolate=False)
    times = {True: [], False: []}
    for _ in range(3):
        for isolate, ctx in ((True, context), (False, in_process)):
            start = time.perf_counter()
            frame = score_chunk(records, ctx)
            times[isolate].append(time.perf_counter() - start)
            assert (frame["status"] == "scored").all()
    a = score_chunk(records, context).select_dtypes("number")
    b = score_chunk(records, in_process).select_dtypes("number")
    assert np.allclose(a.to_numpy(dtype=float), b.to_numpy(dtype=float), equal_nan=True)
    per_candidate = (min(times[True]) - min(times[False])) / len(records)
    assert per_candidate < 0.05, f"isolation costs {per_candidate * 1e3:.1f} ms per candidate"


def test_the_local_clusters_workers_parse_in_bounded_readers_too(context):
    """`goectp screen`'s default LocalCluster: its worker processes are not daemonic, so a candidate that kills its
    reader is rejected there as well and the Dask worker lives on (a daemonic worker would parse in itself and die)."""
    from goectp.screening.cluster import dask_client, workers_can_isolate

    def screen_in_the_worker(context):  # built in the worker: the killer must not be unpickled by the scheduler
        import os

        from goectp.screening.worker import score_chunk as score

        class Killer:
            def __reduce__(self):
                return (os._exit, (3,))

        good = {"id": "good", "structure": _rocksalt(4.2), "source": "test", "band_gap": 2.0}
        return score([good, {"id": "killer", "structure": Killer(), "source": "test", "band_gap": 2.0}], context)

    with dask_client(workers=1, processes=True) as client:
        assert workers_can_isolate(client)
        rows = client.submit(screen_in_the_worker, context, pure=False).result().set_index("id")
        assert rows.loc["killer", "reason_code"] == "worker_died" and rows.loc["good", "status"] == "scored"
        again = client.submit(score_chunk, [_record(2, _rocksalt(4.3))], context, pure=False).result()
        assert again.loc[0, "status"] == "scored"
