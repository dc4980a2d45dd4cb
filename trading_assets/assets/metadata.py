"""Metadata the assets share: images shown inline on a materialization in the Dagster UI."""

import base64

import dagster as dg


def png_markdown(images: dict[str, bytes], note: str = "") -> dg.MarkdownMetadataValue:
    """PNGs (our own renders, never a model's text) inline, each under its name in bold."""
    parts = ([note] if note else []) + [
        f"**{name}**\n\n![{name}](data:image/png;base64,{base64.b64encode(png).decode()})"
        for name, png in images.items()]
    return dg.MetadataValue.md("\n\n".join(parts))
