"""Classifiers on the packaged MiniLM embeddings, for tasks with labels: the nearest training input's
label (embedding_knn) and logistic regression (embedding_classifier), both scikit-learn. No LLM is
involved, so they tell a user when a fine-tune is not needed for the label at all. Each answers with
the training answer nearest the input among those with the predicted label (for a label-only task,
that is the label itself)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tunewright.records import Example
from tunewright.retrieval import input_text, packaged_embedder

EMBEDDING_KNN = "embedding_knn"
EMBEDDING_CLASSIFIER = "embedding_classifier"
# Inverse regularisation strength of the logistic regression. Unit-length 384-d embeddings need a weak
# penalty: scikit-learn's default C=1 leaves every probability near 1 / labels.
CLASSIFIER_C = 20.0


@dataclass(frozen=True)
class EmbeddingAnswer:
    label: str
    confidence: float | None  # the classifier's probability of `label`; None for the nearest neighbour
    output: str


def embed(examples: list[Example]) -> np.ndarray:
    return np.asarray(packaged_embedder().embed([input_text(example) for example in examples]).numpy())


def labelled(train: list[Example], labels: list[str]) -> list[Example]:
    return [example for example in train if example.label in labels]


def classifier_probabilities(train: list[Example], queries: list[Example],
                             labels: list[str]) -> tuple[list[str], np.ndarray]:
    """Logistic regression on the training inputs' embeddings: the labels it knows (those seen in
    training, sorted) and one row of probabilities over them per query (each row sums to 1)."""
    from sklearn.linear_model import LogisticRegression

    rows = labelled(train, labels)
    known = sorted({str(example.label) for example in rows})
    if len(known) == 1:
        return known, np.ones((len(queries), 1))
    model = LogisticRegression(C=CLASSIFIER_C, max_iter=2000)
    model.fit(embed(rows), [example.label for example in rows])
    assert list(model.classes_) == known  # scikit-learn sorts the classes
    return known, np.asarray(model.predict_proba(embed(queries)))


def embedding_answers(name: str, train: list[Example], queries: list[Example],
                      labels: list[str]) -> list[EmbeddingAnswer]:
    """One answer per query from the named embedding baseline."""
    from sklearn.neighbors import KNeighborsClassifier

    rows = labelled(train, labels)
    if not rows:
        raise ValueError("the embedding baselines need training examples with labels from task.labels")
    train_vectors, query_vectors = embed(rows), embed(queries)
    if name == EMBEDDING_KNN:
        knn = KNeighborsClassifier(n_neighbors=1, metric="cosine").fit(train_vectors, [e.label for e in rows])
        predicted = [str(label) for label in knn.predict(query_vectors)]
        confidences: list[float | None] = [None] * len(queries)
    else:
        known, probabilities = classifier_probabilities(train, queries, labels)
        best = probabilities.argmax(axis=1)
        predicted = [known[int(i)] for i in best]
        confidences = [float(probabilities[row, int(i)]) for row, i in enumerate(best)]
    similarity = query_vectors @ train_vectors.T
    answers = []
    for row, label in enumerate(predicted):
        candidates = [i for i, example in enumerate(rows) if example.label == label]
        nearest = max(candidates, key=lambda i: float(similarity[row, i]))
        answers.append(EmbeddingAnswer(label, confidences[row], rows[nearest].reference))
    return answers
