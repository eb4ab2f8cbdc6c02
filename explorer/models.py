"""ModelSelector: which model predicts (a shipped ensemble, one member of it, or the untrained demo model).

The selector owns the prediction cache, so the tensor panel, the 3D view and the equivariance check never run the
same structure twice. Predictions run in float64 by default, so that the equivariance error of the frame-averaged
model is at the level of float64 round-off (the check's tolerance is 1e-5).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import numpy as np
import panel as pn
import param
import torch

from explorer.html_blocks import alert_html
from explorer.live import add_on_demand, live_pane
from explorer.safe import escape_html
from goectp.structures import MAX_SITES

DEMO_MODEL = "untrained demo model"
ENSEMBLE_MEAN = "ensemble mean ± std"
SINGLE_MEMBER = "single member"
DEMO_SEEDS = (0, 1, 2)


class SharedPredictions:
    """Process-wide LRU of predictions of the shipped models, shared read-only by every session of a server (the
    gallery's first structure is predicted once per process, not once per visitor). Thread-safe: uploads are
    predicted in the loader's worker threads."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._data: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> Any:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: tuple, value: Any) -> None:
        """Store ``value``: an array is copied read-only (no session can change what another one sees); anything
        else must be immutable or never changed by its readers."""
        if isinstance(value, np.ndarray):
            value = np.array(value, copy=True)
            value.setflags(write=False)
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


#: Predictions of shipped models (keyed by the model's name, checkpoint stamp, member and precision).
SHARED_PREDICTIONS = SharedPredictions()
#: One lock per process around torch calls: torch's thread setting is global, and a session's event-loop callback
#: and an upload's worker thread may predict at the same time.
_PREDICT_LOCK = threading.RLock()


def build_demo_model(seeds: tuple[int, ...] = DEMO_SEEDS, hidden: int = 64):
    """Untrained GoeCTP ensemble with fixed seeds (for trying the app before a trained model is shipped).

    Its numbers mean nothing physically; the equivariance check works exactly as for a trained model. The
    positive-definite head (ε = I + s F A Aᵀ Fᵀ) and mean pooling keep its ellipsoids dielectric-like.
    """
    from goectp.api import Ensemble, build_model

    members = []
    for seed in seeds:
        torch.manual_seed(seed)
        model = build_model("goectp", hidden=hidden, positive_definite=True, pooling="mean")
        model.set_target_stats(scale=8.0, shift=0.0)
        members.append(model.eval())
    return Ensemble(members, [f"demo-seed{s}" for s in seeds]).eval()


def _evaluating(model: Any) -> Any:
    """``model`` in evaluation mode; a shared model already is (``eval()`` walks every module: ~11 ms for the
    25-member default, twice a session)."""
    return model.eval() if any(m.training for m in (model, *getattr(model, "members", ()))) else model


def structure_key(structure) -> str:
    """Content hash of a structure (lattice, fractional coordinates, species) for the prediction cache."""
    h = hashlib.sha1()
    h.update(np.ascontiguousarray(structure.lattice.matrix, dtype=np.float64).tobytes())
    h.update(np.ascontiguousarray(structure.frac_coords, dtype=np.float64).tobytes())
    h.update(",".join(site.species_string for site in structure).encode())
    return h.hexdigest()


class ModelSelector(pn.viewable.Viewer):
    """Choose the model; predict (cached) tensors for structures with it.

    Parameters ``model_name``, ``mode`` (ensemble mean ± std or a single member), ``member``, ``precision``.
    Dependents watch ``version``, which increments whenever the effective model changes.
    """

    model_name = param.Selector(default=None, objects=[], doc="Shipped model (folder in assets/models)")
    mode = param.Selector(default=ENSEMBLE_MEAN, objects=[ENSEMBLE_MEAN, SINGLE_MEMBER])
    member = param.Integer(default=0, bounds=(0, None), doc="Member index for single-member mode")
    precision = param.Selector(default="float64", objects=["float64", "float32"])
    version = param.Integer(default=0, doc="Incremented when the effective model changes")
    error = param.String(default="")
    cache_size = param.Integer(default=256, bounds=(1, None))
    num_threads = param.Integer(
        default=1,
        bounds=(1, None),
        allow_None=True,
        doc=(
            "CPU threads for one interactive prediction (None: torch's setting). One structure is a tiny graph: extra "
            "threads only add synchronisation, which on a busy machine costs seconds; restored after each call"
        ),
    )

    def __init__(self, models: dict[str, Any] | None = None, **params: Any) -> None:
        """``models``: extra in-memory models by name (tests, notebooks), listed before the shipped ones."""
        from goectp.api import available_models

        self._extra = dict(models or {})
        names = list(self._extra) + available_models()
        if not names:
            names = [DEMO_MODEL]
        super().__init__(**params)
        self.param.model_name.objects = names
        if self.model_name not in names:
            self.model_name = "default" if "default" in names else names[0]
        self._loaded: dict[str, Any] = {}
        self._cache_lock = threading.RLock()
        self._stamps: dict[str, Any] = {}  # shipped/demo models: identity of the process-wide shared copy
        self._cache: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._effective_models: dict[tuple, Any] = {}
        self._effective: Any = None
        self._model_key: tuple = ()
        self._refresh()
        self._layout = self._build()  # built once: every display shows this layout

    # ------------------------------------------------------------------------------------------------ model
    def _load(self, name: str) -> Any:
        if name not in self._loaded:
            if name in self._extra:
                model = self._extra[name]
            elif name == DEMO_MODEL:  # seeded: the same for every session, so built once per process
                model = pn.state.as_cached("goectp-demo-model", build_demo_model)
                self._stamps[name] = "demo"
            else:  # shared read-only across sessions of one server (Panel's cache, not a module global)
                from goectp.api import load_model
                from goectp.registry import checkpoint_files

                # an alias ("default") resolves to its folder: a retrained ensemble gets a new cache entry (the
                # stamp itself is read at most every 10 s: listing the members is ~5 ms a session)
                stamp = pn.state.as_cached(
                    f"goectp-stamp-{name}",
                    lambda: max((p.stat().st_mtime for p in checkpoint_files(name, verify=False)), default=0.0),
                    ttl=10,
                )
                model = pn.state.as_cached(f"goectp-model-{name}-{stamp}", lambda: load_model(name))
                self._stamps[name] = stamp
            self._loaded[name] = _evaluating(model)
        return self._loaded[name]

    @property
    def is_demo(self) -> bool:
        return self.model_name == DEMO_MODEL

    @property
    def n_members(self) -> int:
        model = self._load(self.model_name)
        return len(model.members) if hasattr(model, "members") else 1

    @property
    def model(self) -> Any:
        """The model that predicts: the ensemble, or one member, in the chosen precision."""
        return self._effective

    @property
    def device(self) -> torch.device:
        from goectp.api import default_device

        return default_device()

    @property
    def target(self) -> str:
        from goectp.api import prediction_target

        return prediction_target(self._load(self.model_name))

    @param.depends("model_name", "mode", "member", "precision", watch=True)
    def _refresh(self) -> None:
        try:
            base = self._load(self.model_name)
        except Exception as exc:  # a broken checkpoint must not take the app down
            self.error = f"could not load model {self.model_name!r}: {exc}"
            return
        n = len(base.members) if hasattr(base, "members") else 1
        self.param.member.bounds = (0, n - 1)
        if self.member > n - 1:
            self.member = n - 1  # re-enters _refresh once with a valid member
            return
        single = self.mode == SINGLE_MEMBER and hasattr(base, "members")
        key = (self.model_name, self.member if single else None, self.precision)
        if key not in self._effective_models:
            model = base.members[self.member] if single else base
            dtype = torch.float64 if self.precision == "float64" else torch.float32
            if next(model.parameters()).dtype != dtype:
                if self.model_name in self._stamps:  # a shared model: its converted copy is shared too
                    model = pn.state.as_cached(
                        f"goectp-effective-{key}-{self._stamps[self.model_name]}",
                        lambda m=model: copy.deepcopy(m).to(dtype).eval(),
                    )
                else:
                    model = copy.deepcopy(model).to(dtype)
            self._effective_models[key] = _evaluating(model)
        self._effective, self._model_key = self._effective_models[key], key
        self.error = ""
        self.version += 1

    @property
    def description(self) -> str:
        """One line describing the effective model (shown in every view that uses it)."""
        base = self._load(self.model_name)
        cfg = base.config
        what = f"{self.model_name}"
        if hasattr(base, "members"):
            what += (
                f", ensemble of {len(base.members)} (mean ± std)"
                if self.mode == ENSEMBLE_MEAN
                else f", member {self.member} ({base.names[self.member]}) of {len(base.members)}"
            )
        label = "UNTRAINED DEMO MODEL — numbers are meaningless; " if self.is_demo else ""
        inputs = f", + {cfg.node_features} node features" if getattr(cfg, "node_features", None) else ""
        from goectp.models import networks

        depths = sorted({m.config.num_layers for m in networks(base)})
        layers = " or ".join(map(str, depths)) + (" message layer" if depths == [1] else " message layers")
        return (
            f"{label}{what}; variant {cfg.variant}{inputs}, {layers}, hidden {cfg.hidden}, target ε {self.target}; "
            f"{self.precision} on {self.device.type.upper()}"
        )

    # ------------------------------------------------------------------------------------------------ predict
    @contextlib.contextmanager
    def _threads(self) -> Iterator[None]:
        if self.num_threads is None or self.device.type != "cpu":
            yield
            return
        previous = torch.get_num_threads()
        torch.set_num_threads(self.num_threads)
        try:
            yield
        finally:
            torch.set_num_threads(previous)

    def predict_members(self, structures: list, use_frame: bool | None = None) -> np.ndarray:
        """Per-member predictions ``(M, n, 3, 3)`` (``M = 1`` for a single model), cached per structure.

        Thread-safe (an upload is predicted in the loader's worker thread while the session stays live)."""
        with self._cache_lock:
            return self._predict_members(structures, use_frame)

    @property
    def shared_key(self) -> tuple | None:
        """Key prefix of the process-wide caches for the effective model: ``(stamp, name, member, precision)``
        for a shipped or demo model (the same for every session), ``None`` for a model only this session has."""
        stamp = self._stamps.get(self.model_name)
        return None if stamp is None else (stamp, *self._model_key)

    def _predict_members(self, structures: list, use_frame: bool | None) -> np.ndarray:
        keys = [(self._model_key, use_frame, structure_key(s)) for s in structures]
        missing = [i for i, k in enumerate(keys) if self._cached(k) is None]
        if missing:
            self._compute([structures[i] for i in missing], [keys[i] for i in missing], use_frame)
        result = np.stack([self._cache[k] for k in keys], axis=1)
        self._trim(keys)
        return result

    def predict_parts(self, structures: list) -> dict[str, np.ndarray]:
        """The ε∞ and ionic parts of the effective model's members that predict them apart, ``{part: [S, n, 3, 3]}``
        (``{}`` when none does): computed with the predictions (:meth:`_compute`), cached like them."""
        with self._cache_lock:
            keys = [(self._model_key, "parts", structure_key(s)) for s in structures]
            missing = [i for i, k in enumerate(keys) if self._cached(k) is None]
            if missing:
                self._compute([structures[i] for i in missing], [(*keys[i][:1], None, keys[i][2]) for i in missing])
            found = [self._cache[k] for k in keys]
            self._trim(keys)
        if not found[0]:
            return {}
        return {name: np.stack([f[name] for f in found], axis=1) for name in found[0]}

    def _cached(self, key: tuple) -> Any:
        """A cached value: this session's, else the process-wide one of a shipped/demo model (then kept here)."""
        stamp = self._stamps.get(self.model_name)
        if key not in self._cache and stamp is not None:
            hit = SHARED_PREDICTIONS.get((stamp, *key))
            if hit is not None:
                self._cache[key] = hit
        return self._cache.get(key)

    def _compute(self, structures: list, keys: list[tuple], use_frame: bool | None = None) -> None:
        """Predict ``structures`` with the effective model in one pass (:func:`goectp.inference.run_model`); cache
        the member predictions under ``keys`` and, for the equivariant model (``use_frame=None``), the parts of the
        members that predict them apart and the pooled embeddings (for the OOD flag) next to them."""
        from goectp.api import graphs_for
        from goectp.inference import run_model

        with _PREDICT_LOCK:
            graphs = graphs_for(structures, self.model, max_sites=max([MAX_SITES] + [len(s) for s in structures]))
            with self._threads():
                run = run_model(graphs, self.model, device=self.device, use_frame=use_frame)
        stamp = self._stamps.get(self.model_name)
        for j, key in enumerate(keys):
            values: dict[tuple, Any] = {key: np.array(run.predictions[:, j], copy=True)}
            if use_frame is None:
                values[(key[0], "parts", key[2])] = {name: v[:, j].copy() for name, v in run.parts.items()}
                values[(key[0], "embedding", key[2])] = np.array(run.embeddings[:, j], copy=True)
            for k, value in values.items():
                for array in value.values() if isinstance(value, dict) else [value]:
                    array.setflags(write=False)
                self._cache[k] = value
                if stamp is not None:
                    SHARED_PREDICTIONS.put((stamp, *k), value)

    def _trim(self, used: list[tuple]) -> None:
        for k in used:
            self._cache.move_to_end(k)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    def predict(self, structures: list, use_frame: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, std)``, each ``(n, 3, 3)``, for a list of structures (std over members; zero for one model).

        ``use_frame=False`` runs the backbone ``g`` alone (the non-equivariant baseline of the check).
        """
        members = self.predict_members(structures, use_frame=use_frame)
        mean, std = members.mean(axis=0), members.std(axis=0)
        cal = self.calibration if use_frame is None else None
        if cal is not None:  # calibrated σ (goectp.uncertainty); the mean is unchanged
            std = cal.sigma("tensor", std, mean, members.shape[0])
        return mean, std

    @property
    def calibration(self) -> Any:
        """The ensemble's :class:`goectp.uncertainty.Calibration` (``None`` for one member, the demo model, or an
        ensemble without ``calibration.json``): σ shown by the explorer is then the calibrated σ."""
        if self.mode != ENSEMBLE_MEAN:
            return None
        try:
            base = self._load(self.model_name)
        except Exception:
            return None
        from goectp.uncertainty import calibration_for

        return calibration_for(base)

    def statistics(self, structures: list) -> dict[str, np.ndarray]:
        """ε̄, α, eigenvalues and their σ (calibrated when available), from
        :func:`goectp.tensor_stats.ensemble_statistics`."""
        from goectp.tensor_stats import ensemble_statistics

        return ensemble_statistics(self.predict_members(structures), calibration=self.calibration)

    def ood_one(self, structure) -> dict[str, Any] | None:
        """Out-of-distribution flag of one structure (``{"flag", "reasons", ...}``; ``None`` without calibration)."""
        cal = self.calibration
        if cal is None:
            return None
        cache = self.__dict__.setdefault("_ood_cache", {})
        key = (self._model_key, structure_key(structure))
        shared = self.shared_key
        if key not in cache and shared is not None:
            hit = SHARED_PREDICTIONS.get(("ood", *shared, key[1]))
            if hit is not None:
                cache[key] = hit
        if key not in cache:
            from goectp.elements import element_symbols
            from goectp.tensor_stats import ensemble_statistics

            with self._cache_lock:  # the prediction and its embedding come from the same (cached) pass
                members = self._predict_members([structure], None)
                embedding = self._cached((self._model_key, "embedding", key[1]))
                if embedding is None:  # evicted from this session's cache since the prediction: one more pass
                    self._compute([structure], [(self._model_key, None, key[1])])
                    embedding = self._cached((self._model_key, "embedding", key[1]))
            stats = ensemble_statistics(members, calibration=cal)
            elements = [element_symbols([site.specie.Z for site in structure])]
            cache[key] = cal.ood(elements, stats, None if embedding is None else embedding[:, None])[0]
            if shared is not None:
                SHARED_PREDICTIONS.put(("ood", *shared, key[1]), cache[key])
        return cache[key]

    def predict_one(self, structure, use_frame: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
        mean, std = self.predict([structure], use_frame=use_frame)
        return mean[0], std[0]

    # ------------------------------------------------------------------------------------------------ view
    @param.depends("model_name", "version", "error")
    def _status(self) -> pn.pane.HTML:
        """The model's line of the menu and what is loaded (or the error): one HTML pane updated in place."""
        if self.error:
            kind, css, text = "danger", "goectp-model-error", escape_html(self.error)
        else:
            kind = "warning" if self.is_demo else "info"
            css, text = "goectp-model-status", escape_html(self.description)
        line = escape_html(self.menu_line)
        return pn.pane.HTML(
            (f"<div class='goectp-model-menu-line' style='font-size:0.85em'>{line}</div>" if line else "")
            + alert_html(text, kind, "goectp-alert"),
            css_classes=[css],
            sizing_mode="stretch_width",
        )

    @property
    def menu_line(self) -> str:
        """The selected model's line of the model menu (``assets/models/catalog.json``): what it is, its test MAE,
        ε̄ Spearman, coverage and cost relative to ``fast``; ``""`` when the catalog has none."""
        from goectp.catalog import model_info

        try:
            info = model_info(self.model_name) if self.model_name else None
        except ValueError as exc:  # a damaged catalog is said, never fatal
            return str(exc)
        return info.line() if info is not None else ""

    @param.depends("version")
    def _member_widget(self) -> pn.viewable.Viewable:
        n = self.n_members
        if n < 2:
            return pn.pane.Markdown("Single model (no ensemble std).")
        return pn.widgets.IntSlider.from_param(
            self.param.member, start=0, end=n - 1, name="Member", disabled=self.mode != SINGLE_MEMBER
        )

    def _options(self) -> pn.Column:
        """Ensemble mean ± std or a single member, and the precision (in a card opened on demand)."""
        return pn.Column(
            pn.widgets.RadioButtonGroup.from_param(self.param.mode, color="light"),
            live_pane(self._member_widget, sizing_mode="stretch_width", margin=0),
            pn.widgets.RadioButtonGroup.from_param(self.param.precision, color="light"),
            sizing_mode="stretch_width",
        )

    def _build(self) -> pn.Column:
        """The selector's layout: model, mode, member (a view of ``version``), precision and status."""
        layout = pn.Column(
            pn.widgets.Select.from_param(self.param.model_name, name="Model"),
            live_pane(self._status),
            sizing_mode="stretch_width",
        )
        add_on_demand(layout, self._options, "Ensemble or one member · precision", "goectp-model-options")
        return layout

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout
