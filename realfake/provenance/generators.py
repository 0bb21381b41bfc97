"""The generator-settings witness: what AI front-ends write into a PNG's text chunks (AUTOMATIC1111
and its forks, ComfyUI, InvokeAI, NovelAI, Fooocus, SwarmUI) or an EXIF UserComment, and the names
of AI generators wherever a file names its software."""

from __future__ import annotations

import json
import logging
import re
import warnings
from typing import Any

from PIL import Image, PngImagePlugin

from .findings import MAX_LIST_ITEMS, MAX_TEXT_CHARS, Finding, clip

logger = logging.getLogger(__name__)

MAX_PARAMS_LINE = 20_000  # the settings line of AUTOMATIC1111 parameters is parsed only up to this
# PNG text chunks after the image data are read only by decoding the pixels: done up to this size.
MAX_TRAILING_TEXT_PIXELS = 16_000_000
IMAGE_GENERATOR = "an AI image generator"

# AI generators by name, looked for in Software / CreatorTool / Credit values and in video software
# tags (case-insensitive, whole words, so that "Imagenomic" is not Imagen). A name here is one a tool
# goes by; which tools write their name into their files, and where, is theirs to decide.
AI_SOFTWARE = tuple(
    (name, re.compile(pattern, re.IGNORECASE))
    for name, pattern in (
        ("Adobe Firefly", r"\bfirefly\b"),
        ("DALL-E", r"\bdall[-·‧ ]?e\b"),
        ("Midjourney", r"\bmidjourney\b"),
        ("Stable Diffusion", r"\bstable[ -]?diffusion\b"),
        ("NovelAI", r"\bnovel ?ai\b"),
        ("Imagen", r"\bimagen\b"),
        ("FLUX", r"\bflux\b"),
        ("Leonardo.Ai", r"\bleonardo[. ]?ai\b"),
        ("Bing Image Creator", r"\bbing image creator\b"),
        ("Microsoft Designer", r"\bmicrosoft designer\b"),
        ("ComfyUI", r"\bcomfy ?ui\b"),
        ("InvokeAI", r"\binvoke ?ai\b"),
        ("Fooocus", r"\bfooocus\b"),
        ("AUTOMATIC1111", r"\bautomatic ?1111\b"),
        ("SwarmUI", r"\bswarm ?ui\b"),
        ("Google AI", r"\bgoogle ai\b"),
        ("Gemini", r"\bgemini\b"),
        ("ChatGPT", r"\bchatgpt\b"),
        ("OpenAI", r"\bopenai\b"),
        ("Ideogram", r"\bideogram\b"),
        ("DreamStudio", r"\bdreamstudio\b"),
        ("Stability AI", r"\bstability ?ai\b"),
        ("Draw Things", r"\bdraw things\b"),
        ("Craiyon", r"\bcraiyon\b"),
        ("Runway", r"\brunway ?(?:ml|gen-?\d)\b"),
        ("Recraft", r"\brecraft\b"),
        ("Meta AI", r"\bmeta ai\b"),
        # Video generators and AI avatar services (not "Veo" alone: a sports camera has that name).
        ("Sora", r"\bsora\b"),
        ("Google Veo", r"\b(?:google veo|veo ?[1-9])\b"),
        ("Kling", r"\bkling\b"),
        ("Pika", r"\bpika(?: ?labs)?\b"),
        ("Luma Dream Machine", r"\b(?:luma ?(?:ai|labs)|dream machine)\b"),
        ("Hailuo", r"\bhailuo\b"),
        ("Stable Video Diffusion", r"\bstable video diffusion\b"),
        ("HunyuanVideo", r"\bhunyuan ?video\b"),
        ("CogVideo", r"\bcogvideox?\b"),
        ("Synthesia", r"\bsynthesia\b"),
        ("HeyGen", r"\bheygen\b"),
        ("D-ID", r"\bd-id\b"),
    )
)

A1111_TOOL = "AUTOMATIC1111-style Stable Diffusion web UI"
_A1111_MARKERS = ("Steps:", "Sampler:", "Seed:", "CFG scale:")
# One "Key: value" pair of the settings line (the key's length is bounded, so a long line without a
# colon cannot make the search quadratic).
_A1111_PARAM = re.compile(r'\s*(\w[\w \-/]{0,60}):\s*("(?:\\.|[^\\"])*"|[^,]*)(?:,|$)')
_A1111_DETAILS = {
    "Model": "model",
    "Model hash": "model_hash",
    "Sampler": "sampler",
    "Steps": "steps",
    "Size": "size",
    "Version": "version",
}
# ComfyUI nodes whose inputs name the model.
_COMFY_MODEL_INPUTS = ("ckpt_name", "unet_name", "model_name")


def ai_software(value: str) -> str | None:
    """The AI generator that ``value`` (a Software tag, a creator tool) names, if any."""
    for name, pattern in AI_SOFTWARE:
        if pattern.search(value):
            return name
    return None


def software_finding(value: str, tool: str, where: str, tag: str, what: str = IMAGE_GENERATOR) -> Finding:
    """The ``tag`` found ``where`` names ``tool``, an AI generator, as the software of the file."""
    says = f'The {where} {tag} tag names {tool}, {what} ("{clip(value, 80)}").'
    if where.startswith("PNG"):
        says = f'The {where} names {tool}, {what} ("{clip(value, 80)}").'
    details = {"tool": tool, "software": clip(value), "field": tag}
    return Finding("software", says, "claim", where, True, details, software_summary(tool, what))


def software_summary(tool: str, what: str = IMAGE_GENERATOR) -> str:
    return f"The file's metadata names {tool}, {what}, as its software; that is easy to edit."


def text_findings(image: Image.Image, notes: list[str]) -> list[Finding]:
    """What a PNG's text chunks state (nothing for other formats)."""
    if image.format != "PNG":
        return []
    readable = {}
    for key, value in _png_text(image, notes).items():
        if len(value) > MAX_TEXT_CHARS:
            notes.append(
                f"A PNG text chunk ('{clip(key, 40)}', {len(value) / 2**20:.1f} MB) is larger than "
                f"{MAX_TEXT_CHARS // 2**20} MB and was not read."
            )
        else:
            readable[key] = value
    return _generator_findings(readable)


def oversized_text(error: ValueError) -> str:
    """Pillow's refusal of PNG text (over 1 MB decompressed, or over 64 MB in all), as a person reads it."""
    if "memory" in str(error).lower():
        return f"The PNG text chunks take more than {PngImagePlugin.MAX_TEXT_MEMORY // 2**20} MB in all"
    return f"A PNG text chunk is larger than {PngImagePlugin.MAX_TEXT_CHUNK // 2**20} MB"


def parameters_finding(text: str, where: str, fooocus_scheme: bool = False) -> Finding | None:
    """AUTOMATIC1111 / Forge / SD.Next settings text, or the JSON Fooocus and SwarmUI write."""
    data = _json_object(text)
    if data is not None:
        if "sui_image_params" in data:
            params = data["sui_image_params"] if isinstance(data["sui_image_params"], dict) else {}
            tool, model = "SwarmUI", params.get("model")
            prompt = params.get("prompt")
        elif fooocus_scheme or "fooocus" in text[:MAX_PARAMS_LINE].lower():
            tool = "Fooocus"
            model = data.get("base_model") or data.get("Base Model")
            prompt = data.get("prompt") or data.get("Prompt")
        else:
            return None
        details = {"model": clip(model), "has_prompt": bool(prompt), "prompt_length": len(str(prompt or ""))}
        return _generator_finding(where, tool, details)
    lines = text.strip().split("\n")
    settings_line = lines[-1] if lines else ""
    if not any(marker in settings_line for marker in _A1111_MARKERS):
        return None
    params: dict[str, str] = {}
    for key, value in _A1111_PARAM.findall(settings_line[:MAX_PARAMS_LINE]):
        params.setdefault(key.strip(), value.strip().strip('"'))
    prompt_lines, negative_lines, negative = [], [], False
    for line in lines[:-1]:
        if line.startswith("Negative prompt:"):
            negative = True
            line = line[len("Negative prompt:") :]
        (negative_lines if negative else prompt_lines).append(line)
    prompt = "\n".join(prompt_lines).strip()
    details: dict[str, Any] = {key: clip(params.get(name)) for name, key in _A1111_DETAILS.items()}
    details.update(
        has_prompt=bool(prompt),
        prompt_length=len(prompt),
        has_negative_prompt=bool("\n".join(negative_lines).strip()),
    )
    return _generator_finding(where, A1111_TOOL, details)


def _png_text(image: Image.Image, notes: list[str]) -> dict[str, str]:
    """The PNG's text chunks, including those after the image data when the image is small enough."""
    text: Any = None
    width, height = image.size
    if width * height <= MAX_TRAILING_TEXT_PIXELS:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                text = image.text  # decodes the pixels, to reach text chunks after the image data
        except ValueError as error:
            logger.debug("Oversized PNG text", exc_info=True)
            notes.append(f"{oversized_text(error)} and was not read.")
        except Exception:  # a truncated image: the chunks before its data are still in info
            logger.debug("Could not read the PNG's trailing text chunks", exc_info=True)
    if text is None:
        text = {key: value for key, value in image.info.items() if isinstance(value, str)}
    return {str(key): str(value) for key, value in text.items()}


def _chunk_where(key: str) -> str:
    return f"PNG text chunk '{key}'"


def _generator_findings(chunks: dict[str, str]) -> list[Finding]:
    """Findings from the text chunks AI front-ends write (and the PNG Software chunk)."""
    findings: list[Finding] = []
    tools: set[str] = set()

    def add(finding: Finding | None) -> None:
        if finding:
            findings.append(finding)
            tools.add(finding.details.get("tool", ""))

    if "parameters" in chunks:
        add(parameters_finding(chunks["parameters"], _chunk_where("parameters"), "fooocus_scheme" in chunks))
    if "prompt" in chunks or "workflow" in chunks:
        add(_comfyui_finding(chunks))
    for key in ("invokeai_metadata", "sd-metadata", "Dream"):
        if key in chunks:
            add(_invokeai_finding(key, chunks[key]))
            break
    if re.search(r"novel ?ai", chunks.get("Software", ""), re.IGNORECASE) and (
        "Comment" in chunks or "Source" in chunks
    ):
        add(_novelai_finding(chunks))
    software = chunks.get("Software")
    tool = ai_software(software) if software else None
    if tool and tool not in tools:
        add(software_finding(software, tool, _chunk_where("Software"), "Software"))
    return findings


def _generator_finding(where: str, tool: str, details: dict) -> Finding:
    model = details.get("model")
    bits = f" (model {model})" if model else ""
    prompt = " with a prompt" if details.get("has_prompt") else ""
    name = f"an {tool}" if tool == A1111_TOOL else tool
    says = f"The {where} holds generation settings from {name}{bits}{prompt}."
    summary = (
        f"The file carries generation settings from {name}{bits}, as AI front-ends write them; "
        "unsigned metadata is easy to add or remove."
    )
    return Finding("generator_metadata", says, "claim", where, True, {"tool": tool, **details}, summary)


def _comfyui_finding(chunks: dict[str, str]) -> Finding | None:
    prompt = _json_object(chunks.get("prompt", ""))
    workflow = _json_object(chunks.get("workflow", ""))
    if prompt is None and workflow is None:
        return None
    models: list[str] = []
    for node in (prompt or {}).values():
        inputs = node.get("inputs") if isinstance(node, dict) else None
        for key in _COMFY_MODEL_INPUTS:
            value = inputs.get(key) if isinstance(inputs, dict) else None
            if isinstance(value, str) and clip(value) not in models:
                models.append(clip(value))
    workflow_nodes = (workflow or {}).get("nodes")
    nodes = (
        len(prompt) if prompt is not None else len(workflow_nodes) if isinstance(workflow_nodes, list) else 0
    )
    where = _chunk_where("prompt" if prompt is not None else "workflow")
    details = {
        "model": models[0] if models else None,
        "models": models[:MAX_LIST_ITEMS],
        "nodes": nodes,
        "has_prompt": prompt is not None,
        "prompt_length": len(chunks.get("prompt", "")),
        "has_workflow": workflow is not None,
        "workflow_length": len(chunks.get("workflow", "")),
    }
    return _generator_finding(where, "ComfyUI", details)


def _invokeai_finding(key: str, text: str) -> Finding:
    data = _json_object(text) or {}
    model = data.get("model") or data.get("model_weights")
    if isinstance(model, dict):
        model = model.get("name") or model.get("model_name")
    image = data.get("image") if isinstance(data.get("image"), dict) else {}
    prompt = (
        data.get("positive_prompt")
        or data.get("prompt")
        or image.get("prompt")
        or (text if key == "Dream" else None)
    )
    details = {"model": clip(model), "has_prompt": bool(prompt), "chunk": key}
    return _generator_finding(_chunk_where(key), "InvokeAI", details)


def _novelai_finding(chunks: dict[str, str]) -> Finding:
    comment = _json_object(chunks.get("Comment", "")) or {}
    prompt = comment.get("prompt") or chunks.get("Description")
    details = {
        "model": clip(chunks.get("Source")),
        "software": clip(chunks.get("Software")),
        "has_prompt": bool(prompt),
        "steps": clip(comment.get("steps")),
        "sampler": clip(comment.get("sampler")),
    }
    where = _chunk_where("Comment" if "Comment" in chunks else "Source")
    return _generator_finding(where, "NovelAI", details)


def _json_object(text: str) -> dict | None:
    text = text.strip()
    if not text.startswith("{"):
        return None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):  # not JSON, or nested too deep to parse
        return None
    return data if isinstance(data, dict) else None
