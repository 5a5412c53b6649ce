"""Slugs from free text: lowercase ASCII words joined by single hyphens."""

import re
import unicodedata


def slugify(text: str, max_len: int = 220) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:max_len].rstrip("-") or "item"
