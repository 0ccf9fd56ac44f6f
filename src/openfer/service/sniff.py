"""What an upload really is, from its first bytes; the client's file name and content type are never trusted."""

from __future__ import annotations

#: Image formats the service decodes (all read by Pillow through ``openfer.io.images.read_image``).
IMAGE_KINDS = ("jpeg", "png", "gif", "bmp", "webp", "tiff", "heif")
#: ISO-BMFF major brands of HEIF/HEIC still images (phones' photos); other ``ftyp`` files are videos.
HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1")
#: Video containers the service decodes (through OpenCV's FFmpeg), with the file ending the job's copy gets.
VIDEO_KINDS = {"mp4": ".mp4", "quicktime": ".mov", "matroska": ".mkv", "avi": ".avi"}


def sniff(head: bytes) -> str | None:
    """The format of a file from its first bytes (16 are enough), or None when it is none we know.

    Returns:
        one of ``IMAGE_KINDS`` or ``VIDEO_KINDS``'s keys. WebM is reported as ``matroska`` (same container).
    """
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head.startswith(b"BM") and len(head) >= 14:
        return "bmp"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if head[4:8] == b"ftyp" and head[8:12] in HEIF_BRANDS:
        return "heif"
    if head[4:8] == b"ftyp":
        return "quicktime" if head[8:10] == b"qt" else "mp4"
    if head[4:8] in (b"moov", b"mdat", b"wide", b"free"):  # old QuickTime files start with an atom, not ftyp
        return "quicktime"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "matroska"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    return None


def describe(kind: str | None) -> str:
    """Words for an error message: what the upload looked like."""
    return f"a {kind} file" if kind else "data of an unknown format"
