"""The C2PA witness: Content Credentials, read and validated offline by c2pa-python (no remote
manifest, no OCSP fetch), in any format the SDK reads (JPEG, PNG, WebP, TIFF, HEIC, AVIF, MP4, MOV,
AVI and more)."""

from __future__ import annotations

import functools
import json
import logging
import re
from typing import Any, BinaryIO

from .findings import MAX_LIST_ITEMS, Finding, clip, reason
from .xmp import main_source_type, short_source, source_phrase

logger = logging.getLogger(__name__)

MAX_INGREDIENT_DEPTH = 5
_UNTRUSTED = ("signingCredential.untrusted",)


def c2pa_findings(stream: BinaryIO, mime: str, trust_anchors: str | None, notes: list[str]) -> list[Finding]:
    """The Content Credentials in ``stream`` (a file of type ``mime``), as at most one finding."""
    try:
        import c2pa
    except ImportError:
        notes.append("Content Credentials (C2PA) were not checked: c2pa-python is not installed.")
        return []
    try:
        if mime not in c2pa.Reader.get_supported_mime_types():
            return []
        reader = c2pa.Reader.try_create(mime, stream, context=_context(trust_anchors))
        if reader is None:
            return []
        with reader:
            store = json.loads(reader.json())
    except Exception as error:  # c2pa raises C2paError subclasses, and others on odd input
        logger.debug("Unreadable C2PA manifest store", exc_info=True)
        # The native library says "Remote: ...", which the bindings raise as a plain C2paError.
        if isinstance(error, c2pa.C2paError.RemoteManifest) or str(error).startswith("Remote"):
            url = re.search(r"https?://\S+", str(error))
            where = f" ({clip(url.group(0), 200)})" if url else ""
            notes.append(
                f"The file points to Content Credentials stored online{where}; they were not fetched."
            )
            return []
        notes.append(
            f"The file's Content Credentials (C2PA) are damaged and could not be read ({reason(error)})."
        )
        return []
    try:
        finding = _c2pa_finding(store, notes)
    except Exception as error:  # a manifest store shaped unlike the SDK's own output
        logger.debug("Unexpected C2PA manifest store", exc_info=True)
        notes.append(f"The file's Content Credentials (C2PA) could not be interpreted ({reason(error)}).")
        return []
    return [finding] if finding else []


@functools.lru_cache(maxsize=4)
def _context(trust_anchors: str | None) -> Any:
    import c2pa

    settings: dict[str, Any] = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}}
    if trust_anchors:
        settings["trust"] = {"user_anchors": trust_anchors}
    return c2pa.Context.from_dict(settings)


def _c2pa_finding(store: dict, notes: list[str]) -> Finding | None:
    manifests = store.get("manifests") or {}
    label = store.get("active_manifest")
    manifest = manifests.get(label) if label else None
    if not isinstance(manifest, dict):
        notes.append("The file's Content Credentials (C2PA) have no active manifest.")
        return None
    signature = manifest.get("signature_info") or {}
    signer = clip(signature.get("issuer") or signature.get("common_name") or "an unnamed signer")
    state, errors, untrusted = _validation(store)
    if state == "Trusted":
        strength = "verified"
    elif state == "Valid" or (state is None and not errors):
        strength = "signed"
    else:
        strength = "claim"
        notes.append(
            "The file's Content Credentials do not validate "
            f"({', '.join(errors[:3]) or 'invalid'}), so what they state is only a claim."
        )
    actions, sources, agents = _actions(manifest)
    ingredient_sources = _ingredient_sources(manifest, manifests)
    source = main_source_type(sources) or main_source_type(ingredient_sources)
    phrase, ai = source_phrase(source) if source else (None, None)
    if source and source not in sources:
        phrase = f"made from an ingredient that was {phrase}"
    generator = _claim_generator(manifest)
    tool = agents[0] if agents else generator
    details = {
        "signer": signer,
        "signer_common_name": clip(signature.get("common_name")),
        "signature_alg": clip(signature.get("alg")),
        "signed_at": clip(signature.get("time")),
        "validation_state": state,
        "validation_errors": errors[:MAX_LIST_ITEMS],
        "trusted": state == "Trusted",
        "signer_untrusted": untrusted,
        "claim_generator": generator,
        "tool": tool,
        "digital_source_type": clip(source),
        "states": phrase,
        "digital_source_types": [clip(s) for s in sources[:MAX_LIST_ITEMS]],
        "ingredient_digital_source_types": [clip(s) for s in ingredient_sources[:MAX_LIST_ITEMS]],
        "actions": [clip(a) for a in actions[:MAX_LIST_ITEMS]],
        "title": clip(manifest.get("title")),
        "manifest": clip(label),
    }
    if strength == "claim":
        by = "Content Credentials whose signature does not validate"
    else:
        by = f"Content Credentials signed by {signer}" + (
            " (a trusted signer)" if strength == "verified" else ""
        )
    if phrase:
        says = f"{by} state: {phrase} ({short_source(source)})."
    elif tool:
        says = f"{by} name the tool {tool} but do not say how the file was made."
    else:
        says = f"{by} do not say how the file was made."
    what = f"state it was {phrase}" if phrase else "do not say how it was made"
    if strength == "claim":
        summary = f"The file's Content Credentials {what}, but their signature does not validate."
    else:
        trust = (
            "a trusted signer"
            if strength == "verified"
            else "valid signature; the signer is on no trust list"
        )
        summary = f"The file's Content Credentials, signed by {signer} ({trust}), {what}."
    return Finding("c2pa", says, strength, "C2PA manifest", ai, details, summary)


def _validation(store: dict) -> tuple[str | None, list[str], bool]:
    """The validation state, the failure codes (trust aside) and whether the signer is untrusted."""
    state = store.get("validation_state")
    results = (store.get("validation_results") or {}).get("activeManifest") or {}
    failures = results.get("failure")
    if failures is None:
        failures = store.get("validation_status") or []
    codes = [str(item.get("code")) for item in failures if isinstance(item, dict)]
    untrusted = any(code in _UNTRUSTED for code in codes)
    errors = [clip(code) for code in codes if code not in _UNTRUSTED]
    return (str(state) if state else None), errors, untrusted


def _actions(manifest: dict) -> tuple[list[str], list[str], list[str]]:
    """The actions, digital source types and software agents of a manifest's actions assertions."""
    actions: list[str] = []
    sources: list[str] = []
    agents: list[str] = []
    for assertion in manifest.get("assertions") or []:
        if not isinstance(assertion, dict) or not str(assertion.get("label", "")).startswith("c2pa.actions"):
            continue
        for action in (assertion.get("data") or {}).get("actions") or []:
            if not isinstance(action, dict):
                continue
            actions.append(str(action.get("action")))
            parameters = action.get("parameters")
            source = action.get("digitalSourceType") or (
                parameters.get("digitalSourceType") if isinstance(parameters, dict) else None
            )
            if source and str(source) not in sources:
                sources.append(str(source))
            agent = action.get("softwareAgent")
            name = agent.get("name") if isinstance(agent, dict) else agent
            if name and clip(name) not in agents:
                agents.append(clip(name))
    return actions, sources, agents


def _ingredient_sources(
    manifest: dict, manifests: dict, depth: int = 0, seen: set | None = None
) -> list[str]:
    """Digital source types stated by the manifests of the manifest's ingredients, recursively."""
    seen = set() if seen is None else seen
    found: list[str] = []
    if depth >= MAX_INGREDIENT_DEPTH:
        return found
    for ingredient in manifest.get("ingredients") or []:
        label = ingredient.get("active_manifest") if isinstance(ingredient, dict) else None
        if not label or label in seen or not isinstance(manifests.get(label), dict):
            continue
        seen.add(label)
        parent = manifests[label]
        for source in _actions(parent)[1] + _ingredient_sources(parent, manifests, depth + 1, seen):
            if source not in found:
                found.append(source)
    return found


def _claim_generator(manifest: dict) -> str | None:
    info = manifest.get("claim_generator_info")
    if isinstance(info, list) and info and isinstance(info[0], dict) and info[0].get("name"):
        version = info[0].get("version")
        return clip(f"{info[0]['name']} {version}" if version else info[0]["name"])
    return clip(manifest.get("claim_generator"))
