"""``rp.PathwayClustering``: group units into pathways as a scikit-learn estimator."""

from __future__ import annotations

import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.cluster import KMeans, SpectralCoclustering
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.exceptions import NotFittedError as _SklearnNotFittedError
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from ..errors import NotFittedError
from .onsets import ON_FLOOR, profile_on

__all__ = ["PathwayClustering", "bipartite_modularity"]


def bipartite_modularity(A: np.ndarray, row_labels: np.ndarray, col_labels: np.ndarray) -> float:
    r"""Barber's (2007) modularity of a row/column co-clustering of a non-negative matrix.

    .. math:: Q_B = \frac{1}{m} \sum_{ij} \Big(A_{ij} - \frac{k_i d_j}{m}\Big)\,
              \delta(r_i, c_j), \qquad k_i = \sum_j A_{ij},\; d_j = \sum_i A_{ij},\;
              m = \sum_{ij} A_{ij}

    Rows or columns labelled ``-1`` belong to no block. Returns 0 for an all-zero matrix.
    """
    m = float(A.sum())
    if m <= 0:
        return 0.0
    k, d = A.sum(1), A.sum(0)
    q = 0.0
    for p in np.union1d(row_labels[row_labels >= 0], col_labels[col_labels >= 0]):
        rows, cols = row_labels == p, col_labels == p
        q += A[np.ix_(rows, cols)].sum() / m - k[rows].sum() * d[cols].sum() / m**2
    return float(q)


class PathwayClustering(ClusterMixin, BaseEstimator):
    """Cluster units into pathways; each pathway is reported by the columns it is on in.

    Rows of ``X`` are units. Two methods:

    - ``"profiles"``: columns are conditions and ``X[u, c]`` is the unit's gating profile
      :math:`P(\\text{on} \\mid c)` (:func:`relu_probe.gating_profile`). Units are clustered
      by importance-weighted k-means (``sample_weight`` = importance). Unless
      ``n_pathways`` is given, the number of pathways is the **smallest n whose weighted
      within-cluster sum of squares is at most** ``(1 - explained)`` **of the one-cluster
      value** (n <= ``max_pathways``), i.e. the fewest pathways that explain ``explained``
      of the importance-weighted profile variance. A pathway is *on* in column ``c`` when its
      centre there is at least ``relative_threshold`` × the centre's largest value **and** at
      least ``on_floor`` (a centre (0.03, 0.02, 0) of units that are nearly always off is on
      nowhere). :func:`relu_probe.find_pathways` names its pathways after their members'
      own on-sets instead (:func:`relu_probe.pathways.onsets.members_label`).
    - ``"cocluster"``: columns are samples and ``X`` is the (unit × sample) gate matrix
      (non-negative). scikit-learn's :class:`~sklearn.cluster.SpectralCoclustering` finds
      blocks of units that are on together on a block of samples. Unless ``n_pathways`` is
      given, n in 2..``max_pathways`` is chosen to maximise Barber's bipartite modularity
      (:func:`bipartite_modularity`). A pathway is on in the columns (samples) of its block.
      All-zero rows / columns (never-on units, samples with no unit on) get label ``-1``.

    Parameters
    ----------
    method : {"profiles", "cocluster"}, default="profiles"
    n_pathways : int, optional
        Fix the number of clusters instead of choosing it.
    max_pathways : int, default=16
        Upper bound of the automatic choice.
    explained : float in (0, 1], default=0.9
        ``"profiles"``: share of the weighted profile variance the clusters must explain.
    relative_threshold : float in (0, 1], default=0.5
        ``"profiles"``: a centre is on in a column when it reaches this fraction of its max.
    on_floor : float in [0, 1], default=0.05
        ``"profiles"``: ... and at least this value (on for 5% of the samples); the rule of
        :func:`relu_probe.pathways.onsets.profile_on`.
    n_init : int, default=4
        Restarts of each k-means / co-clustering fit.
    random_state : int, RandomState or None, default=0

    Attributes
    ----------
    labels_ : ndarray of shape (n_units,)
        Pathway of each unit (``-1``: all-zero row, ``"cocluster"`` only).
    n_pathways_ : int
    pathway_columns_ : list of tuple of int
        For each pathway, the columns it is on in.
    cluster_centers_ : ndarray of shape (n_pathways_, n_columns)
        ``"profiles"``: the weighted k-means centres. ``"cocluster"``: mean of each block's
        rows.
    column_labels_ : ndarray of shape (n_columns,)
        ``"cocluster"`` only: pathway of each column (sample), ``-1`` for all-zero columns.
    score_ : float
        ``"profiles"``: explained share of weighted variance; ``"cocluster"``: bipartite
        modularity of the chosen co-clustering.
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[1, 1, 0], [0.9, 1, 0], [0, 0, 1.0], [0, 0.1, 1]])
    >>> est = PathwayClustering().fit(X)
    >>> est.labels_.tolist(), est.pathway_columns_
    ([0, 0, 1, 1], [(0, 1), (2,)])
    """

    _parameter_constraints: dict = {
        "method": [StrOptions({"profiles", "cocluster"})],
        "n_pathways": [Interval(Integral, 1, None, closed="left"), None],
        "max_pathways": [Interval(Integral, 1, None, closed="left")],
        "explained": [Interval(Real, 0, 1, closed="right")],
        "relative_threshold": [Interval(Real, 0, 1, closed="right")],
        "on_floor": [Interval(Real, 0, 1, closed="both")],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        method="profiles",
        n_pathways=None,
        max_pathways=16,
        explained=0.9,
        relative_threshold=0.5,
        on_floor=ON_FLOOR,
        n_init=4,
        random_state=0,
    ):
        self.method = method
        self.n_pathways = n_pathways
        self.max_pathways = max_pathways
        self.explained = explained
        self.relative_threshold = relative_threshold
        self.on_floor = on_floor
        self.n_init = n_init
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = self.method == "cocluster"
        return tags

    def fit(self, X, y=None, sample_weight=None):
        """Cluster the rows of ``X``; ``sample_weight`` is each unit's importance."""
        self._validate_params()
        X = validate_data(self, X, dtype=np.float64)
        weight = _check_sample_weight(sample_weight, X, dtype=np.float64)
        if self.method == "profiles":
            self._fit_profiles(X, weight)
        else:
            if np.any(X < 0):
                raise ValueError(
                    "Negative values in data passed to PathwayClustering(method='cocluster'): "
                    f"it needs a non-negative (unit × sample) gate matrix; X has min {float(X.min())!r}."
                )
            self._fit_cocluster(X * weight[:, None] if sample_weight is not None else X)
        return self

    # ------------------------------------------------------------------ profiles
    def _kmeans(self, n):
        return KMeans(n_clusters=n, n_init=self.n_init, random_state=self.random_state)

    def _fit_profiles(self, X, weight):
        n_distinct = len(np.unique(X, axis=0))
        if self.n_pathways is not None:
            if self.n_pathways > X.shape[0]:
                raise ValueError(
                    f"n_pathways={self.n_pathways} exceeds the number of units ({X.shape[0]})."
                )
            candidates = [self.n_pathways]
        else:
            candidates = list(range(1, min(self.max_pathways, n_distinct) + 1))
        centre = np.average(X, axis=0, weights=weight) if weight.sum() > 0 else X.mean(0)
        total = float((weight * ((X - centre) ** 2).sum(1)).sum())
        chosen = None
        for n in candidates:
            with warnings.catch_warnings():
                # k-means warns when fewer distinct points than clusters; handled by n_distinct
                warnings.simplefilter("ignore", category=UserWarning)
                km = self._kmeans(n).fit(X, sample_weight=weight)
            chosen = km
            if total <= 0 or km.inertia_ <= (1.0 - self.explained) * total + 1e-12 * total:
                break
        km = chosen
        # pathway ids: the clusters actually used, numbered in order of their first unit
        uniq, first = np.unique(km.labels_, return_index=True)
        order = uniq[np.argsort(first)]
        lookup = np.full(km.n_clusters, -1, dtype=np.int64)
        lookup[order] = np.arange(order.size)
        self.kmeans_ = km
        self._lookup = lookup
        self.labels_ = lookup[km.labels_]
        self.cluster_centers_ = km.cluster_centers_[order]
        self.n_pathways_ = int(order.size)
        self.pathway_columns_ = [self._on_columns(c) for c in self.cluster_centers_]
        self.score_ = 1.0 if total <= 0 else float(1.0 - km.inertia_ / total)

    def _on_columns(self, centre):
        on = profile_on(centre[None, :], self.relative_threshold, self.on_floor)[0]
        return tuple(int(j) for j in np.flatnonzero(on))

    # ------------------------------------------------------------------ cocluster
    def _fit_cocluster(self, X):
        rows = np.flatnonzero(X.sum(1) > 0)
        cols = np.flatnonzero(X.sum(0) > 0)
        row_labels = np.full(X.shape[0], -1, dtype=np.int64)
        col_labels = np.full(X.shape[1], -1, dtype=np.int64)
        A = X[np.ix_(rows, cols)]
        limit = min(self.max_pathways, rows.size, cols.size)
        if self.n_pathways is not None:
            candidates = [min(self.n_pathways, max(limit, 1))]
        else:
            candidates = list(range(2, limit + 1))
        best = (0.0, np.zeros(rows.size, np.int64), np.zeros(cols.size, np.int64))
        for n in candidates:
            if n < 2:
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = SpectralCoclustering(
                    n_clusters=n, n_init=self.n_init, random_state=self.random_state
                ).fit(A)
            q = bipartite_modularity(A, model.row_labels_, model.column_labels_)
            if q > best[0] + 1e-12 or self.n_pathways is not None:
                best = (q, model.row_labels_.astype(np.int64), model.column_labels_.astype(np.int64))
        q, r, c = best
        # keep consecutive ids for blocks that hold at least one unit
        uniq, first = np.unique(r, return_index=True)
        used = uniq[np.argsort(first)]  # numbered in order of their first unit
        remap = {int(old): new for new, old in enumerate(used)}
        row_labels[rows] = [remap[int(v)] for v in r]
        col_labels[cols] = [remap.get(int(v), -1) for v in c]
        self.labels_ = row_labels
        self.column_labels_ = col_labels
        self.n_pathways_ = int(used.size)
        self.pathway_columns_ = [
            tuple(int(j) for j in np.flatnonzero(col_labels == p)) for p in range(self.n_pathways_)
        ]
        self.cluster_centers_ = np.array(
            [X[row_labels == p].mean(0) for p in range(self.n_pathways_)]
        ).reshape(self.n_pathways_, X.shape[1])
        self.score_ = float(q)

    # ------------------------------------------------------------------ predict
    def predict(self, X):
        """Pathway of new units (rows): nearest centre (``"profiles"``) or the pathway
        whose columns the unit is most active on (``"cocluster"``)."""
        try:
            check_is_fitted(self, "labels_")
        except _SklearnNotFittedError as exc:
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet; call `fit` first."
            ) from exc
        X = validate_data(self, X, dtype=np.float64, reset=False)
        if self.method == "profiles":
            return self._lookup[self.kmeans_.predict(X)]
        scores = np.stack(
            [
                X[:, list(cols)].mean(1) if cols else np.zeros(X.shape[0])
                for cols in self.pathway_columns_
            ],
            axis=1,
        ) if self.n_pathways_ else np.zeros((X.shape[0], 0))
        out = np.full(X.shape[0], -1, dtype=np.int64)
        if scores.shape[1]:
            active = scores.max(1) > 0
            out[active] = scores[active].argmax(1)
        return out
