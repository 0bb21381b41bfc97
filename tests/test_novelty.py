"""realfake.novelty: "real" is earned. Faces unlike the real training faces get a low p-value and
the verdict "uncertain" instead of "real"; held-out real faces like them rarely do."""

from __future__ import annotations

import numpy as np
import pytest

from realfake.calibration import VerdictThresholds
from realfake.novelty import Novelty


def real_faces(rng, n: int, dims: int = 40) -> np.ndarray:
    """Features of "real faces": a few strong directions and noise, as a head's standardised inputs."""
    basis = np.random.default_rng(1).normal(size=(6, dims))
    return rng.normal(size=(n, 6)) @ basis + 0.3 * rng.normal(size=(n, dims))


@pytest.fixture(scope="module")
def novelty() -> Novelty:
    rng = np.random.default_rng(0)
    return Novelty.fit(real_faces(rng, 600), real_faces(rng, 300), alpha=0.05, components=16)


def test_held_out_real_faces_are_novel_about_alpha_of_the_time(novelty):
    new_reals = real_faces(np.random.default_rng(7), 2000)
    share = novelty.novel(new_reals).mean()
    assert 0.02 <= share <= 0.09  # alpha = 0.05, up to the reference's own sampling error
    p = novelty.p_values(new_reals)
    assert p.min() > 0 and p.max() <= 1


def test_faces_far_from_the_real_training_faces_are_novel(novelty):
    rng = np.random.default_rng(3)
    elsewhere = real_faces(rng, 200) + 6.0 * rng.normal(size=(1, 40))  # the same kind, moved away
    assert novelty.novel(elsewhere).mean() > 0.95
    assert novelty.p_values(elsewhere).max() < 0.05


def test_a_novel_face_is_uncertain_instead_of_real_and_nothing_else_changes():
    bands = VerdictThresholds(real_at_most=0.1, fake_at_least=0.9)
    p = np.array([0.02, 0.02, 0.5, 0.95, 0.95])
    novel = np.array([False, True, True, True, False])
    assert bands.verdicts(p, novel).tolist() == ["real", "uncertain", "uncertain", "fake", "fake"]
    assert bands.shares(p, novel) == pytest.approx({"real": 0.2, "uncertain": 0.4, "fake": 0.4})
    assert bands.verdicts(p).tolist() == ["real", "real", "uncertain", "fake", "fake"]


def test_saved_and_loaded_it_gives_the_same_p_values(novelty, tmp_path):
    novelty.save(tmp_path)
    loaded = Novelty.load(tmp_path / "novelty.safetensors", novelty.settings())
    faces = real_faces(np.random.default_rng(5), 100)
    assert np.array_equal(loaded.p_values(faces), novelty.p_values(faces))
    assert loaded.alpha == novelty.alpha and loaded.neighbours == novelty.neighbours


def test_it_needs_both_kinds_of_real_faces():
    with pytest.raises(ValueError, match="needs real training faces and held-out real faces"):
        Novelty.fit(np.zeros((3, 4)), np.zeros((0, 4)), alpha=0.05)
