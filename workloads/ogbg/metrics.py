"""ogbg's eval metrics on a split's collected logits, labels and weights, in numpy.

AlgoPerf's (its clu ``EvalMetrics``): ``mean_average_precision`` as OGB's molpcba evaluator
defines it -- sigmoid of the logits, scikit-learn's ``average_precision_score`` per task over
the labelled graphs, for the tasks with at least one positive and one negative label, and the
mean over those tasks (NaN when there are none); ``accuracy``, the fraction of labelled
(graph, task) entries where ``logit > 0`` matches the label; and ``loss``, the masked sigmoid
cross-entropy averaged over the labelled entries.

One difference from AlgoPerf's code: it decides whether a task has both classes on all rows,
where unlabelled entries and padding graphs carry the label 0, so a task whose labelled graphs
are all positive counts with an AP of 1; here, as in OGB's evaluator, only labelled entries
decide. On molpcba's validation and test splits every task has both classes among its
labelled graphs, so the two agree there.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score


def sigmoid_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The numerically stable sigmoid cross-entropy, elementwise (float64)."""
    logits = logits.astype(np.float64)
    return np.maximum(logits, 0) - logits * labels + np.log1p(np.exp(-np.abs(logits)))


def mean_average_precision(logits: np.ndarray, labels: np.ndarray,
                           weights: np.ndarray) -> float:
    """The mean over tasks with both classes among their labelled graphs of the average
    precision of ``sigmoid(logits)``; ``weights`` 0 marks unlabelled entries and padding."""
    labelled = np.asarray(weights) > 0
    probabilities = 1.0 / (1.0 + np.exp(-np.asarray(logits, np.float64)))
    precisions = []
    for task in range(labels.shape[1]):
        task_labels = labels[labelled[:, task], task]
        if task_labels.size and 0 < task_labels.sum() < task_labels.size:
            precisions.append(average_precision_score(
                task_labels, probabilities[labelled[:, task], task]))
    return float(np.mean(precisions)) if precisions else float("nan")


def eval_metrics(logits: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> dict[str, float]:
    """``accuracy``, ``loss`` and ``mean_average_precision`` of one split."""
    weights = np.asarray(weights, np.float64)
    count = weights.sum()
    matches = ((logits > 0) == (labels > 0.5)).astype(np.float64)
    return {
        "accuracy": float((matches * weights).sum() / count),
        "loss": float((sigmoid_cross_entropy(logits, labels) * weights).sum() / count),
        "mean_average_precision": mean_average_precision(logits, labels, weights),
    }
