"""What a file says about its own origin, and how far each statement can be trusted.

``read_provenance`` reads the original file bytes (never a re-encoded image) and returns every
statement about the file's origin that it finds, each as a :class:`Finding` with a strength:

- **verified**: C2PA Content Credentials whose signature validates and whose signer is on a trust
  list (only when the caller passes trust anchors). The strongest evidence there is, but it says who
  vouches for the file, not that the signer told the truth.
- **signed**: C2PA Content Credentials whose signature validates cryptographically but whose signer
  is not on a trust list. The manifest has not changed since it was signed, but anyone can make a
  certificate with any name on it.
- **claim**: unsigned metadata (an XMP ``DigitalSourceType``, the generation settings an AI front-end
  writes into a PNG text chunk, a generator's name in the ``Software`` tag or a video's encoder tag),
  and Content Credentials whose signature does not validate. Tools write these as they are, but
  anyone can add or remove them.
- **hint**: camera EXIF (make, model, date, lens) or the camera a phone names in a video's tags: a
  weak sign of a camera original, since it is kept by many editors and is easy to copy onto any
  file; and the software a video names as its writer, which says how the file was saved.

Each witness is a module: :mod:`.content_credentials` (C2PA), :mod:`.xmp` (XMP and the IPTC
digital source types), :mod:`.generators` (the settings AI front-ends write, and generators' names),
:mod:`.exif` (EXIF) and :mod:`.containers` (the tags of MP4, MOV, WebM, MKV and AVI files);
:mod:`.reader` tells the kind of file and asks the witnesses that read it.

Most sites strip metadata on upload, so its absence says nothing about a file. Metadata that cannot
be read (a malformed XMP packet, a broken C2PA store, an oversized PNG text chunk, a damaged video
container) becomes a one-line note, never an exception. Parsing is left to libraries: Pillow (EXIF,
XMP packets, PNG text chunks), defusedxml (XMP), PyAV (video tags) and c2pa-python (Content
Credentials, which it validates offline: no remote manifest or OCSP fetch).
"""

from .findings import KINDS, STRENGTHS, Finding, Provenance
from .generators import A1111_TOOL, AI_SOFTWARE
from .reader import read_provenance
from .xmp import DIGITAL_SOURCE_TYPES

__all__ = [
    "A1111_TOOL",
    "AI_SOFTWARE",
    "DIGITAL_SOURCE_TYPES",
    "KINDS",
    "STRENGTHS",
    "Finding",
    "Provenance",
    "read_provenance",
]
