"""The shared face data's generator families, each with the real photos it is scored against.

One definition for the leave-one-generator-out protocol (train/protocol.py), the calibration report
(train/calibrate.py) and the robustness benchmark.
"""

from __future__ import annotations

WILD = ("facemask-unmasked", "unsplash-men", "lfw-news")
STYLEGAN2 = ("tpdne-128", "tpdne-2022", "tpdne-2025", "tpdne-roeishc")
# family -> (its fake sources, the real sources of about its size and framing it is scored against)
FAMILIES = {
    "StyleGAN2 (thispersondoesnotexist)": (("tpdne-2025",), ("ffhq-1024",)),
    "Stable Diffusion 2.1": (("sdfd-sd21",), ("ffhq-1024",)),
    "text-to-image services (Flux.1, SDXL, DALL-E 3)": (("t2i-sfhq",), WILD),
    "StyleGAN3 (in no training set)": (("stylegan3-r",), ("ffhq-sg3pair",)),
}


def family_rows(rows: list[dict], family: str) -> list[dict]:
    """The rows (each with a ``source``) of a family's fakes and of its real reference."""
    fakes, reals = FAMILIES[family]
    return [row for row in rows if row["source"] in (*fakes, *reals)]
