"""realfake.provenance: what a file says about its origin, how strongly, and never a crash on bad metadata."""

from __future__ import annotations

import datetime
import io
import json
import random
from pathlib import Path

import c2pa
import pytest
from conftest import REAL_FACES
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from PIL import ExifTags, Image, PngImagePlugin

from benchmarks.clips import write_frames
from realfake.provenance import A1111_TOOL, KINDS, STRENGTHS, Finding, Provenance, read_provenance

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"
PROMPT = "a portrait of a smiling woman, golden hour, 85mm, a secret phrase"
A1111 = (
    f"{PROMPT}\nNegative prompt: blurry, lowres\n"
    "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x512, Model: sd_xl_base_1.0"
)
SIGNER_ORG = "Example Corp"


def pixels(size=(64, 48)) -> Image.Image:
    return Image.new("RGB", size, (120, 30, 200))


def encode(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def resave(data: bytes) -> bytes:
    """What a site does on upload: decode and save again, passing no metadata on."""
    with Image.open(io.BytesIO(data)) as image:
        return encode(image.convert("RGB"), image.format)


def xmp_packet(source_type: str = "trainedAlgorithmicMedia") -> bytes:
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/">'
        f"<Iptc4xmpExt:DigitalSourceType>{IPTC}{source_type}</Iptc4xmpExt:DigitalSourceType>"
        '</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
    ).encode()


def png_with_text(**chunks: str) -> bytes:
    info = PngImagePlugin.PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value)
    return encode(pixels(), "PNG", pnginfo=info)


def camera_exif() -> Image.Exif:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "Apple"
    exif[ExifTags.Base.Model] = "iPhone 13"
    sub = exif.get_ifd(ExifTags.IFD.Exif)
    sub[ExifTags.Base.DateTimeOriginal] = "2023:05:01 10:00:00"
    sub[ExifTags.Base.LensModel] = "iPhone 13 back camera 5.1mm f/1.6"
    return exif


def only(provenance: Provenance, kind: str) -> Finding:
    found = [finding for finding in provenance.findings if finding.kind == kind]
    assert len(found) == 1, provenance.findings
    return found[0]


# --- a throwaway certificate chain and a C2PA-signed JPEG ---------------------------------------------


def _certificate(subject, issuer, public_key, signing_key, *, ca: bool):
    now = datetime.datetime.now(datetime.timezone.utc)
    usage = dict.fromkeys(
        (
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "encipher_only",
            "decipher_only",
        ),
        False,
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=not ca, key_cert_sign=ca, crl_sign=ca, **usage), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    if not ca:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False
        ).add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signing_key.public_key()), critical=False
        )
    return builder.sign(signing_key, hashes.SHA256())


@pytest.fixture(scope="module")
def credentials() -> dict:
    return make_credentials()


def make_credentials() -> dict:
    """A CA and an ES256 end-entity certificate it issued (C2PA refuses a self-signed leaf)."""
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Throwaway Test Root")])
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "Example Signer"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, SIGNER_ORG),
        ]
    )
    ca = _certificate(ca_name, ca_name, ca_key.public_key(), ca_key, ca=True)
    leaf = _certificate(name, ca_name, key.public_key(), ca_key, ca=False)
    pem = serialization.Encoding.PEM
    return {
        "chain": leaf.public_bytes(pem) + ca.public_bytes(pem),  # leaf first
        "key": key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
        "root": ca.public_bytes(pem).decode(),
    }


def c2pa_sign(data: bytes, mime: str, credentials: dict, remote_url: str | None = None) -> bytes:
    manifest = {
        "claim_generator_info": [{"name": "realfake-tests", "version": "1.0"}],
        "title": "generated.jpg",
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [
                        {
                            "action": "c2pa.created",
                            "digitalSourceType": IPTC + "trainedAlgorithmicMedia",
                            "softwareAgent": {"name": "Test Generator"},
                        }
                    ]
                },
            }
        ],
    }
    info = c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, credentials["chain"], credentials["key"], None)
    signed = io.BytesIO()
    with c2pa.Signer.from_info(info) as signer, c2pa.Builder(manifest) as builder:
        if remote_url:
            builder.set_no_embed()
            builder.set_remote_url(remote_url)
        builder.sign(signer, mime, io.BytesIO(data), signed)
    return signed.getvalue()


@pytest.fixture(scope="module")
def signed_jpeg(credentials) -> bytes:
    return c2pa_sign(encode(pixels(), "JPEG"), "image/jpeg", credentials)


def tagged_face_photos(folder: Path, credentials: dict) -> dict[str, Path]:
    """A real face photo saved with each kind of statement about its origin, and once stripped:
    {"a1111.png", "c2pa.jpg", "camera.jpg", "xmp.jpg", "iphone.heic", "stripped.jpg"} -> path."""
    import pillow_heif  # noqa: F401  (registered by realfake.images; HEIC files are written through Pillow)

    face = Image.open(REAL_FACES[0]).convert("RGB").resize((384, 384))
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", A1111)
    files = {
        "a1111.png": encode(face, "PNG", pnginfo=info),
        "c2pa.jpg": c2pa_sign(encode(face, "JPEG", quality=92), "image/jpeg", credentials),
        "camera.jpg": encode(face, "JPEG", quality=92, exif=camera_exif()),
        "xmp.jpg": encode(face, "JPEG", quality=92, xmp=xmp_packet()),
        "iphone.heic": encode(face, "HEIF", exif=camera_exif().tobytes()),
    }
    files["stripped.jpg"] = resave(files["c2pa.jpg"])
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return {name: folder / name for name in files}


# --- what the file says --------------------------------------------------------------------------


def test_automatic1111_parameters_name_the_tool_and_model_but_not_the_prompt():
    provenance = read_provenance(png_with_text(parameters=A1111))
    finding = only(provenance, "generator_metadata")
    assert (finding.strength, finding.ai, finding.where) == ("claim", True, "PNG text chunk 'parameters'")
    assert finding.details["tool"] == A1111_TOOL
    assert finding.details["model"] == "sd_xl_base_1.0"
    assert finding.details["sampler"] == "Euler a"
    assert finding.details["has_prompt"] is True and finding.details["has_negative_prompt"] is True
    assert A1111_TOOL in finding.says and "sd_xl_base_1.0" in finding.says
    assert "secret phrase" not in json.dumps(provenance.to_dict())
    assert provenance.declares_ai and provenance.strongest_ai is finding
    assert "sd_xl_base_1.0" in provenance.summary()


def test_comfyui_prompt_json_is_named_comfyui():
    prompt = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "flux1-dev.safetensors"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": PROMPT, "clip": ["4", 1]}},
    }
    provenance = read_provenance(png_with_text(prompt=json.dumps(prompt), workflow=json.dumps({"nodes": []})))
    finding = only(provenance, "generator_metadata")
    assert finding.details["tool"] == "ComfyUI" and "ComfyUI" in finding.says
    assert finding.details["model"] == "flux1-dev.safetensors"
    assert finding.details["has_workflow"] is True
    assert (finding.strength, finding.ai) == ("claim", True)
    assert "secret phrase" not in json.dumps(provenance.to_dict())


def test_xmp_digital_source_type_is_an_ai_claim():
    provenance = read_provenance(encode(pixels(), "JPEG", xmp=xmp_packet()))
    finding = only(provenance, "digital_source_type")
    assert (finding.strength, finding.ai, finding.where) == ("claim", True, "XMP")
    assert finding.details["digital_source_type"] == IPTC + "trainedAlgorithmicMedia"
    assert "generative AI" in finding.says and "generative AI" in provenance.summary()
    assert provenance.notes == ()


def test_xmp_digital_capture_is_not_ai():
    provenance = read_provenance(encode(pixels(), "JPEG", xmp=xmp_packet("digitalCapture")))
    finding = only(provenance, "digital_source_type")
    assert finding.ai is False and not provenance.declares_ai


def test_camera_exif_is_a_weak_hint_of_a_camera():
    provenance = read_provenance(encode(pixels(), "JPEG", exif=camera_exif()))
    finding = only(provenance, "camera")
    assert (finding.strength, finding.ai, finding.where) == ("hint", False, "EXIF")
    assert finding.details["make"] == "Apple" and finding.details["model"] == "iPhone 13"
    assert finding.details["datetime_original"] == "2023:05:01 10:00:00"
    assert finding.details["lens_model"].startswith("iPhone 13 back camera")
    assert not provenance.declares_ai and provenance.strongest_ai is None
    assert "Apple iPhone 13" in provenance.summary() and "weak" in provenance.summary()


def test_software_tag_of_an_ai_generator_is_an_ai_claim():
    exif = Image.Exif()
    exif[ExifTags.Base.Software] = "Adobe Firefly"
    provenance = read_provenance(encode(pixels(), "JPEG", exif=exif))
    finding = only(provenance, "software")
    assert (finding.strength, finding.ai, finding.details["tool"]) == ("claim", True, "Adobe Firefly")


def test_ordinary_software_tag_says_nothing():
    exif = Image.Exif()
    exif[ExifTags.Base.Software] = "Adobe Photoshop 25.0 (Macintosh)"
    assert read_provenance(encode(pixels(), "JPEG", exif=exif)).findings == ()


def test_a1111_parameters_in_exif_user_comment():
    exif = Image.Exif()
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.UserComment] = b"UNICODE\x00" + A1111.encode("utf-16-be")
    finding = only(read_provenance(encode(pixels(), "JPEG", exif=exif)), "generator_metadata")
    assert finding.where == "EXIF UserComment" and finding.details["model"] == "sd_xl_base_1.0"


def test_c2pa_manifest_signed_by_an_untrusted_signer(signed_jpeg):
    provenance = read_provenance(signed_jpeg)
    finding = only(provenance, "c2pa")
    assert (finding.strength, finding.ai, finding.where) == ("signed", True, "C2PA manifest")
    assert finding.details["signer"] == SIGNER_ORG
    assert finding.details["signer_common_name"] == "Example Signer"
    assert finding.details["digital_source_type"] == IPTC + "trainedAlgorithmicMedia"
    assert finding.details["signer_untrusted"] is True and finding.details["validation_errors"] == []
    assert finding.details["tool"] == "Test Generator"
    assert SIGNER_ORG in finding.says and "trainedAlgorithmicMedia" in finding.says
    assert provenance.strongest_ai is finding and provenance.notes == ()
    summary = provenance.summary()
    assert SIGNER_ORG in summary and "generative AI" in summary


def test_c2pa_manifest_with_a_trusted_root_is_verified(signed_jpeg, credentials):
    finding = only(read_provenance(signed_jpeg, trust_anchors=credentials["root"]), "c2pa")
    assert finding.strength == "verified" and finding.details["trusted"] is True


def test_c2pa_in_png_outranks_its_own_claims(credentials):
    signed = c2pa_sign(png_with_text(parameters=A1111), "image/png", credentials)
    provenance = read_provenance(signed)
    assert {finding.kind for finding in provenance.findings} == {"c2pa", "generator_metadata"}
    assert provenance.strongest_ai.kind == "c2pa"


def test_heic_content_credentials_and_xmp(credentials):
    pytest.importorskip("pillow_heif")  # realfake.images registers it with Pillow when installed
    if "HEIF" not in Image.SAVE:
        pytest.skip("pillow-heif is not registered with Pillow")
    heic = c2pa_sign(encode(pixels(), "HEIF", xmp=xmp_packet()), "image/heic", credentials)
    provenance = read_provenance(heic)
    assert {finding.kind for finding in provenance.findings} == {"c2pa", "digital_source_type"}
    assert only(provenance, "c2pa").strength == "signed" and provenance.notes == ()


# --- stripped metadata ---------------------------------------------------------------------------


def _tagged_files(signed_jpeg) -> dict[str, bytes]:
    exif = Image.Exif()
    exif[ExifTags.Base.Software] = "Adobe Firefly"
    return {
        "a1111": png_with_text(parameters=A1111),
        "comfyui": png_with_text(prompt=json.dumps({"1": {"class_type": "KSampler", "inputs": {}}})),
        "xmp": encode(pixels(), "JPEG", xmp=xmp_packet()),
        "camera": encode(pixels(), "JPEG", exif=camera_exif()),
        "software": encode(pixels(), "JPEG", exif=exif),
        "c2pa": signed_jpeg,
    }


def test_a_resave_strips_everything(signed_jpeg):
    for name, data in _tagged_files(signed_jpeg).items():
        assert read_provenance(data).findings, name
        stripped = read_provenance(resave(data))
        assert stripped.findings == () and stripped.notes == (), name
        assert stripped.summary().startswith("No provenance data")


# --- malformed metadata: findings-free or a note, never a crash -------------------------------------


def test_truncated_xmp_is_a_note():
    provenance = read_provenance(encode(pixels(), "JPEG", xmp=xmp_packet()[:150]))
    assert provenance.findings == ()
    assert len(provenance.notes) == 1 and "XMP" in provenance.notes[0]


def test_tampered_c2pa_manifest_is_only_a_claim(signed_jpeg):
    assert signed_jpeg.count(b"Test Generator") == 1
    tampered = signed_jpeg.replace(b"Test Generator", b"Test Generatos")
    provenance = read_provenance(tampered)
    finding = only(provenance, "c2pa")
    assert finding.strength == "claim" and finding.details["validation_errors"]
    assert any("do not validate" in note for note in provenance.notes)
    assert "does not validate" in provenance.summary()


def test_corrupted_c2pa_store_is_a_note(signed_jpeg):
    start = signed_jpeg.find(b"jumb")
    garbled = signed_jpeg[: start + 100] + bytes(b ^ 0x5A for b in signed_jpeg[start + 100 : start + 400])
    garbled += signed_jpeg[start + 400 :]
    provenance = read_provenance(garbled)
    assert all(finding.kind != "c2pa" or finding.strength == "claim" for finding in provenance.findings)
    assert any("Content Credentials" in note for note in provenance.notes)


def test_remote_content_credentials_are_not_fetched(credentials):
    url = "https://example.com/manifests/generated.c2pa"
    provenance = read_provenance(c2pa_sign(encode(pixels(), "JPEG"), "image/jpeg", credentials, url))
    assert provenance.findings == ()
    assert len(provenance.notes) == 1 and url in provenance.notes[0] and "not fetched" in provenance.notes[0]


def test_huge_png_text_chunk_is_a_note():
    provenance = read_provenance(png_with_text(parameters=A1111 + "x" * 5_000_000))
    assert provenance.findings == ()
    assert len(provenance.notes) == 1 and "larger than" in provenance.notes[0]


def test_huge_compressed_png_text_chunk_is_a_note():
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "Steps: 20, " * 300_000, zip=True)
    provenance = read_provenance(encode(pixels(), "PNG", pnginfo=info))
    assert provenance.findings == ()
    assert len(provenance.notes) == 1 and "larger than" in provenance.notes[0]


def test_truncated_exif_is_a_note():
    exif = camera_exif().tobytes()
    provenance = read_provenance(encode(pixels(), "JPEG", exif=exif[: len(exif) - 30]))
    assert len(provenance.notes) == 1 and "damaged" in provenance.notes[0]
    assert all(finding.kind == "camera" for finding in provenance.findings)


def test_random_damage_never_raises(signed_jpeg):
    rng = random.Random(0)
    files = list(_tagged_files(signed_jpeg).values())
    for _ in range(300):
        data = bytearray(rng.choice(files))
        for _ in range(rng.randint(1, 6)):
            position = rng.randrange(len(data))
            if rng.random() < 0.7:
                data[position] = rng.randrange(256)
            else:
                del data[position : position + rng.randint(1, 64)]
        provenance = read_provenance(bytes(data))
        json.dumps(provenance.to_dict())
        assert all("\n" not in note for note in provenance.notes)


@pytest.mark.parametrize(
    "data",
    [
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n",
        b"just some text",
        b"\xff\xd8\xff\xe0 truncated",
    ],
    ids=["pdf", "text", "truncated-jpeg"],
)
def test_non_images_are_a_note(data):
    provenance = read_provenance(data)
    assert provenance.findings == () and len(provenance.notes) == 1


def test_unreadable_paths_are_a_note(tmp_path):
    assert "No such file" in read_provenance(tmp_path / "missing.jpg").notes[0]
    (tmp_path / "empty.jpg").write_bytes(b"")
    assert "empty" in read_provenance(tmp_path / "empty.jpg").notes[0]


# --- videos: the container's tags, its XMP and its Content Credentials ------------------------------

PHONE_TAGS = {
    "com.apple.quicktime.make": "Apple",
    "com.apple.quicktime.model": "iPhone 15 Pro",
    "com.apple.quicktime.software": "17.4",
    "com.apple.quicktime.creationdate": "2024-05-01T10:00:00+0200",
}
KEEP_TAGS = {"movflags": "use_metadata_tags"}  # the MP4/MOV muxer writes every tag, as phones do
XMP_UUID = bytes.fromhex("be7acfcb97a942e89c71999491e3afac")


def video(path: Path, codec: str = "libx264", **options) -> Path:
    """A 0.5 s clip of plain frames, with the container tags and muxer options given."""
    return write_frames(path, (pixels() for _ in range(5)), size=(64, 48), codec=codec, **options)


def test_a_phone_clip_names_its_camera(tmp_path):
    provenance = read_provenance(video(tmp_path / "phone.mov", metadata=PHONE_TAGS, options=KEEP_TAGS))
    camera = only(provenance, "camera")
    assert (camera.strength, camera.ai, camera.where) == ("hint", False, "MOV container")
    assert camera.details["camera"] == "Apple iPhone 15 Pro" and camera.details["software"] == "17.4"
    assert camera.says == (
        "MOV container camera data: Apple iPhone 15 Pro (recorded 2024-05-01T10:00:00+0200, software 17.4)."
    )
    assert "Apple iPhone 15 Pro" in provenance.summary() and not provenance.declares_ai


def test_an_ai_generator_named_in_a_video_software_tag_is_a_claim(tmp_path):
    tags = {"software": "Runway Gen-3 Alpha"}
    provenance = read_provenance(video(tmp_path / "gen.mp4", metadata=tags, options=KEEP_TAGS))
    finding = only(provenance, "software")
    assert (finding.strength, finding.ai, finding.details["tool"]) == ("claim", True, "Runway")
    assert (
        finding.says == 'The MP4 container software tag names Runway, an AI generator ("Runway Gen-3 Alpha").'
    )
    assert provenance.declares_ai and "Runway" in provenance.summary()


@pytest.mark.parametrize(
    "name, codec, where",
    [
        ("a.mp4", "libx264", "MP4"),
        ("a.webm", "libvpx-vp9", "WebM"),
        ("a.mkv", "libx264", "Matroska"),
        ("a.avi", "mpeg4", "AVI"),
    ],
)
def test_a_video_written_by_ffmpeg_says_only_that(tmp_path, name, codec, where):
    provenance = read_provenance(video(tmp_path / name, codec))
    finding = only(provenance, "software")
    assert (finding.strength, finding.ai, finding.where) == ("hint", None, f"{where} container")
    assert finding.details["writer"] == "FFmpeg" and finding.details["software"].startswith("Lavf")
    assert "not how its pictures were made" in finding.says and provenance.notes == ()
    assert not provenance.declares_ai and provenance.summary().startswith("The file names the software")


@pytest.mark.parametrize("name, mime", [("a.mp4", "video/mp4"), ("a.mov", "video/quicktime")])
def test_content_credentials_in_a_video(tmp_path, credentials, name, mime):
    signed = c2pa_sign(video(tmp_path / name).read_bytes(), mime, credentials)
    provenance = read_provenance(signed)
    c2pa_finding = only(provenance, "c2pa")
    assert c2pa_finding.strength == "signed" and c2pa_finding.ai is True and provenance.notes == ()
    assert provenance.summary().startswith("The file's Content Credentials, signed by Example Corp")
    assert only(read_provenance(signed, trust_anchors=credentials["root"]), "c2pa").strength == "verified"
    tampered = bytearray(signed)
    tampered[signed.index(b"mdat") + 20] ^= 0xFF  # a frame's bytes, which the manifest's hash covers
    provenance = read_provenance(bytes(tampered))
    assert only(provenance, "c2pa").strength == "claim" and "do not validate" in provenance.notes[0]


def test_xmp_in_an_mp4_states_its_source_type(tmp_path):
    data = video(tmp_path / "a.mp4").read_bytes()
    packet = XMP_UUID + xmp_packet()
    with_xmp = data + (8 + len(packet)).to_bytes(4, "big") + b"uuid" + packet  # a top-level XMP box
    finding = only(read_provenance(with_xmp), "digital_source_type")
    assert finding.ai is True and finding.strength == "claim" and "generative AI" in finding.says


def test_damaged_videos_never_raise(tmp_path, credentials):
    signed = c2pa_sign(
        video(tmp_path / "a.mp4", metadata=PHONE_TAGS, options=KEEP_TAGS).read_bytes(),
        "video/mp4",
        credentials,
    )
    cut = read_provenance(signed[: len(signed) // 2])
    assert (
        cut.findings == ()
        and len(cut.notes) == 1
        and cut.notes[0].startswith("The MP4 container could not be read")
    )
    rng = random.Random(0)
    for _ in range(60):
        data = bytearray(signed)
        for _ in range(rng.randint(1, 6)):
            position = rng.randrange(len(data))
            data[position] = rng.randrange(256)
        provenance = read_provenance(bytes(data))
        json.dumps(provenance.to_dict())
        assert all("\n" not in note for note in provenance.notes)


# --- the API ------------------------------------------------------------------------------------------


def test_path_and_bytes_give_the_same_json_serialisable_result(tmp_path, signed_jpeg):
    for name, data in _tagged_files(signed_jpeg).items():
        path = tmp_path / name
        path.write_bytes(data)
        from_bytes, from_path, from_str = (
            read_provenance(data),
            read_provenance(path),
            read_provenance(str(path)),
        )
        assert from_bytes == from_path == from_str, name
        encoded = json.dumps(from_bytes.to_dict())
        assert json.loads(encoded)["declares_ai"] is from_bytes.declares_ai
        for finding in from_bytes.findings:
            assert finding.kind in KINDS and finding.strength in STRENGTHS


def test_strongest_ai_prefers_the_stronger_finding():
    hint = Finding("software", "s", "claim", "EXIF", True)
    signed = Finding("c2pa", "c", "signed", "C2PA manifest", True, {"signer": "X"})
    camera = Finding("camera", "k", "hint", "EXIF", False, {"camera": "Apple iPhone 13"})
    provenance = Provenance(findings=(camera, hint, signed))
    assert provenance.strongest_ai is signed and provenance.declares_ai
    assert Provenance(findings=(camera,)).strongest_ai is None
    assert Provenance().to_dict() == {
        "findings": [],
        "notes": [],
        "declares_ai": False,
        "summary": "No provenance data: most sites strip it, so its absence says nothing.",
    }


def test_predict_files_carries_what_each_file_says(detector, tmp_path, credentials):
    photos = tagged_face_photos(tmp_path, credentials)
    results = {Path(result.path).name: result for result in detector.predict_files(sorted(photos.values()))}
    assert results["a1111.png"].provenance.declares_ai and len(results["a1111.png"].faces) == 1
    assert results["c2pa.jpg"].provenance.strongest_ai.kind == "c2pa"
    assert results["stripped.jpg"].provenance.findings == () and len(results["stripped.jpg"].faces) == 1
    assert results["c2pa.jpg"].to_dict()["provenance"] == results["c2pa.jpg"].provenance.to_dict()
    [unread] = detector.predict_files([photos["c2pa.jpg"]], provenance=False)
    assert unread.provenance is None and unread.to_dict()["provenance"] is None
