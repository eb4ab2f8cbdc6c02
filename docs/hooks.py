"""MkDocs hooks: pages made from files outside ``docs/``, so that each text exists once.

- ``index.md`` is the repository's ``README.md`` and ``benchmarks.md`` is ``BENCHMARKS.md``, with their links made
  relative to the site (``docs/results.md`` → ``results.md``, ``BENCHMARKS.md`` → ``benchmarks.md``); a link to a
  repository file that is not a page (a model card, a script) becomes its path in code font.
- ``models/<name>.md`` is the model card ``assets/models/<name>/MODEL_CARD.md`` of each shipped ensemble (written by
  `goectp ensemble export`), with its reliability diagram; a link to another card becomes a link to its page.
- In the pages of ``docs/``, links written for the repository (``../BENCHMARKS.md``, ``../README.md``,
  ``../assets/models/<name>/MODEL_CARD.md``, ``../notebooks/<name>.ipynb``) point at the site's pages instead, so
  that the same Markdown works on a code host and in the site.
- ``notebooks/*.ipynb`` are added as they are in the repository's ``notebooks/`` (rendered, never executed, by
  mkdocs-jupyter, which therefore has to see them first: priority 100).
"""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
#: site page ← repository file
GENERATED = {"index.md": "README.md", "benchmarks.md": "BENCHMARKS.md"}
_LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)\s]+)\)")


def site_links(text: str) -> str:
    """Rewrite the links of a repository-root Markdown file for a page at the root of the site."""

    def fix(match: re.Match) -> str:
        bang, label, target = match.groups()
        if re.match(r"[a-z]+:|#", target):
            return match.group(0)
        path, _, anchor = target.partition("#")
        anchor = f"#{anchor}" if anchor else ""
        if path.startswith("docs/") and not path.startswith("docs/model_notes/"):
            return f"{bang}[{label}]({path[len('docs/') :]}{anchor})"
        for page, source in GENERATED.items():
            if path == source:
                return f"{bang}[{label}]({page}{anchor})"
        card = re.fullmatch(r"assets/models/([\w.-]+)/MODEL_CARD\.md", path)
        if card:
            return f"{bang}[{label}](models/{card.group(1)}.md{anchor})"
        return label if label.startswith("`") else f"{label} (`{path}`)"

    return _LINK.sub(fix, text)


_REPO_LINK = re.compile(
    r"\]\((?:\.\./)+(BENCHMARKS\.md|README\.md|assets/models/[\w.-]+/MODEL_CARD\.md|notebooks/[\w.-]+\.ipynb)"
)


def page_links(text: str, depth: int) -> str:
    """Repository links of a page ``depth`` folders below ``docs/`` made relative to the site."""
    up = "../" * depth

    def fix(match: re.Match) -> str:
        path = match.group(1)
        card = re.fullmatch(r"assets/models/([\w.-]+)/MODEL_CARD\.md", path)
        page = (
            f"models/{card.group(1)}.md"
            if card
            else {"BENCHMARKS.md": "benchmarks.md", "README.md": "index.md"}.get(path, path)
        )
        return f"]({up}{page}"

    return _REPO_LINK.sub(fix, text)


def on_page_markdown(markdown: str, page, config, files) -> str:
    if page.file.src_uri in GENERATED or page.file.src_uri.startswith("models/"):
        return markdown
    return page_links(markdown, page.file.src_uri.count("/"))


def model_card(name: str, text: str) -> str:
    """A model card's links made relative to ``models/<name>.md``: other cards are pages, the figure is renamed."""
    text = re.sub(r"\]\(\.\./([\w.-]+)/MODEL_CARD\.md\)", r"](\1.md)", text)
    return text.replace("](reliability.png)", f"]({name}-reliability.png)")


@event_priority(100)
def on_files(files: Files, config) -> Files:
    for page, source in GENERATED.items():
        files.append(File.generated(config, page, content=site_links((ROOT / source).read_text(encoding="utf-8"))))
    for card in sorted((ROOT / "assets" / "models").glob("*/MODEL_CARD.md")):
        name = card.parent.name
        files.append(File.generated(config, f"models/{name}.md", content=model_card(name, card.read_text("utf-8"))))
        figure = card.parent / "reliability.png"
        if figure.exists():
            files.append(File.generated(config, f"models/{name}-reliability.png", abs_src_path=str(figure)))
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        # a plain File with the repository as its source folder: mkdocs-jupyter rebuilds it from src_dir + path
        files.append(File(f"notebooks/{notebook.name}", str(ROOT), config["site_dir"], config["use_directory_urls"]))
    return files
