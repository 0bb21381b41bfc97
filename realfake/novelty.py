"""How unlike the real photos a model learned from a face is, as a conformal p-value.

A low P(fake) says that a face shows none of the traces of the generators the model learned; it does
not say that the face looks like the real photos it learned from. A face from a generator in none of
the training data can score low only because it is new to the head. So a model may carry a novelty
model of its head's (standardised) features: a whitened PCA of the real training faces' features,
a sample of those faces in that space, and the novelty scores of held-out real faces that were not
in the sample. A face's novelty score is its mean distance to its ``neighbours`` nearest sampled
real faces; its p-value is the share of held-out real faces at least as novel (a conformal p-value
for "this face is like the real photos the model knows"). A face whose p-value is below ``alpha``
gets the verdict "uncertain" where it would have been "real": held-out real faces of the sources it
trained on fall below alpha at rate alpha, by construction; faces unlike all of them, far more often.

The arrays live in ``novelty.safetensors`` beside the weights, the settings in the config
(:data:`NOVELTY_KEY`), so they travel with the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

NOVELTY_KEY = "realfake_novelty"
NOVELTY_FILE = "novelty.safetensors"
NOVEL_REASON = "unlike the real photos this model knows"
COMPONENTS = 64  # whitened PCA directions of the real training faces' features
NEIGHBOURS = 5
MAX_SAMPLE = 4096  # real training faces kept as the reference sample


@dataclass(frozen=True)
class Novelty:
    """A novelty model of a head's features (see the module docstring)."""

    mean: np.ndarray  # (features,) the real training faces' mean
    components: np.ndarray  # (components, features) PCA directions, each divided by its spread
    sample: np.ndarray  # (faces, components) real training faces, projected
    reference: np.ndarray  # (faces,) sorted novelty scores of held-out real faces
    alpha: float
    neighbours: int = NEIGHBOURS

    @classmethod
    def fit(
        cls,
        real_features: np.ndarray,
        heldout_real_features: np.ndarray,
        alpha: float,
        components: int = COMPONENTS,
        neighbours: int = NEIGHBOURS,
        max_sample: int = MAX_SAMPLE,
        seed: int = 0,
    ) -> Novelty:
        """Fit on the real faces a head trained on and score the held-out real faces that give the
        p-values (each must hold real faces only; the two must not share a face)."""
        from sklearn.decomposition import PCA

        real_features = np.asarray(real_features, dtype=np.float64)
        if len(real_features) <= neighbours or not len(heldout_real_features):
            raise ValueError("A novelty model needs real training faces and held-out real faces.")
        pca = PCA(n_components=min(components, *real_features.shape), random_state=seed).fit(real_features)
        spread = np.sqrt(np.maximum(pca.explained_variance_, 1e-12))
        rng = np.random.default_rng(seed)
        keep = rng.permutation(len(real_features))[:max_sample]
        # Rounded to float16 as saved, so the held-out scores are those the saved model gives.
        model = cls(
            mean=_half(pca.mean_),
            components=_half(pca.components_ / spread[:, None]),
            sample=np.zeros((0, len(spread)), dtype=np.float32),
            reference=np.zeros(0),
            alpha=float(alpha),
            neighbours=neighbours,
        )
        model = model.replace(sample=_half(model.project(real_features[keep])))
        return model.replace(reference=np.sort(model.scores(heldout_real_features).astype(np.float32)))

    def replace(self, **changes) -> Novelty:
        from dataclasses import replace

        return replace(self, **changes)

    def project(self, features: np.ndarray) -> np.ndarray:
        """Features in the whitened PCA space of the real training faces."""
        features = np.asarray(features, dtype=np.float32)
        return (features - self.mean) @ self.components.T

    def scores(self, features: np.ndarray) -> np.ndarray:
        """Each face's mean distance to its nearest sampled real training faces (higher: more novel)."""
        from sklearn.neighbors import NearestNeighbors

        index = NearestNeighbors(n_neighbors=min(self.neighbours, len(self.sample))).fit(self.sample)
        distances, _ = index.kneighbors(self.project(features))
        return distances.mean(axis=1).astype(np.float64)

    def p_values(self, features: np.ndarray) -> np.ndarray:
        """Each face's conformal p-value under "like the real photos the model knows"."""
        scores = self.scores(features)
        at_least = len(self.reference) - np.searchsorted(self.reference, scores, side="left")
        return (1.0 + at_least) / (1.0 + len(self.reference))

    def novel(self, features: np.ndarray) -> np.ndarray:
        """Whether each face is too unlike the known real photos to be called real."""
        return self.p_values(features) < self.alpha

    def settings(self) -> dict:
        """What the config stores (:data:`NOVELTY_KEY`)."""
        return {"alpha": self.alpha, "neighbours": self.neighbours, "file": NOVELTY_FILE}

    def save(self, folder: str | Path) -> None:
        """The arrays into ``folder``/:data:`NOVELTY_FILE` (the settings go into the config)."""
        from safetensors.numpy import save_file

        arrays = {"mean": self.mean, "components": self.components, "sample": self.sample}
        arrays = {name: np.ascontiguousarray(value, dtype=np.float16) for name, value in arrays.items()}
        arrays["reference"] = np.ascontiguousarray(self.reference, dtype=np.float32)
        save_file(arrays, str(Path(folder) / NOVELTY_FILE))

    @classmethod
    def load(cls, path: str | Path, settings: dict) -> Novelty:
        """A novelty model from its arrays' file and the config's settings."""
        from safetensors.numpy import load_file

        arrays = load_file(str(path))
        return cls(
            mean=arrays["mean"].astype(np.float32),
            components=arrays["components"].astype(np.float32),
            sample=arrays["sample"].astype(np.float32),
            reference=arrays["reference"].astype(np.float64),
            alpha=float(settings["alpha"]),
            neighbours=int(settings.get("neighbours", NEIGHBOURS)),
        )


def _half(values: np.ndarray) -> np.ndarray:
    """float32 values rounded to float16, as :meth:`Novelty.save` stores them."""
    return np.asarray(values).astype(np.float16).astype(np.float32)
