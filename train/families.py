"""The shared face data's generator families and kinds of real photo, each with what it is scored against.

One definition for the leave-one-out protocol (train/protocol.py, train/probe_heads.py), the
calibration report (train/calibrate.py) and the robustness benchmark.
"""

from __future__ import annotations

WILD = ("facemask-unmasked", "unsplash-men", "lfw-news", "aaf-ages")
# Real photos of which every run holds out the same 30% by file: the wild ones and stock portraits.
SHARED_REAL = (*WILD, "pixabay-portraits")
STYLEGAN2 = ("tpdne-128", "tpdne-2022", "tpdne-2025")
PORTRAIT_APPS = ("facechain-portraits", "kolors-people")
UNSEEN = "StyleGAN3 (in no training set)"  # the family no run trains on
# family -> (its fake sources, the real sources of about its size and framing it is scored against)
FAMILIES = {
    "StyleGAN2 (thispersondoesnotexist)": (("tpdne-2025",), ("ffhq-1024",)),
    "Stable Diffusion 2.1": (("sdfd-sd21",), ("ffhq-1024",)),
    "text-to-image services (Flux.1, SDXL, DALL-E 3)": (("t2i-sfhq",), SHARED_REAL),
    "AI portrait apps and pipelines (FaceChain, Kolors)": (PORTRAIT_APPS, ("scut-beauty",)),
    UNSEEN: (("stylegan3-r",), ("ffhq-sg3pair",)),
}
# kind of real photo -> (its name, its sources): the leave-one-real-source-out folds train without them
REAL_KINDS = {
    "ffhq": ("FFHQ (Flickr photos, aligned)", ("ffhq-thumb128", "ffhq-1024", "ffhq-sg3pair")),
    "portraits-1024": ("portraits-1024 (FFHQ and CelebA-HQ portraits)", ("portraits-1024",)),
    "facemask": ("facemask-unmasked (web photos, many Asian faces)", ("facemask-unmasked",)),
    "unsplash-men": ("unsplash-men (men in the wild)", ("unsplash-men",)),
    "lfw-news": ("lfw-news (news photos)", ("lfw-news",)),
    "pixabay": ("pixabay-portraits (stock portraits)", ("pixabay-portraits",)),
    "aaf-ages": ("aaf-ages (children and people over 60)", ("aaf-ages",)),
    "scut-beauty": ("scut-beauty (retouched and beauty-filtered faces)", ("scut-beauty",)),
}
# Groups of people named in a source's file names (pixabay-portraits-woman-0001.jpg): name -> marker
GROUPS = {
    "women": "-woman-",
    "men": "-man-",
    "children": "-child-",
    "elders": "-elder-",
}


def family_rows(rows: list[dict], family: str) -> list[dict]:
    """The rows (each with a ``source``) of a family's fakes and of its real reference."""
    fakes, reals = FAMILIES[family]
    return [row for row in rows if row["source"] in (*fakes, *reals)]


def group_of(file: str) -> str | None:
    """The group of people a file's name says it shows (see :data:`GROUPS`), or None."""
    name = file.rsplit("/", 1)[-1]
    return next((group for group, marker in GROUPS.items() if marker in name), None)
