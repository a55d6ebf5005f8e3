"""Turn each chapter's MyST source into the notebook Colab opens: plain Markdown, no MyST.

The book renders MyST (glued numbers, exercises, folded solutions, links between
chapters); Colab and Jupyter show it raw. So the committed chapters/NN_name.ipynb is
generated from chapters/NN_name.md by this converter, and the .md stays the only
source anyone edits:

- {glue:text}`name:.1f` becomes `name`; outside the book `fpcore.chapter.glue` prints
  "name = value" under the cell that computes it, so a Colab reader sees the number
  after running that cell;
- {doc}`NN_name` becomes a link that opens that chapter in Colab;
- exercises become numbered bold paragraphs, solutions fold into <details>,
  admonitions become block quotes; other roles keep their text.

Why our own converter and not sphinx-tojupyter (QuantEcon's): that one is a Sphinx
builder, so it needs a whole second Sphinx build of the book and knows nothing of
myst-nb's glue; the book uses only the handful of constructs above, which a page of
regular expressions handles and a test checks on every chapter.

    python -m tools.colab chapters/06_pruning.md ...   # write the .ipynb next to each .md
    python -m tools.colab --check                       # fail if a committed .ipynb is stale
"""
from __future__ import annotations

import argparse
import hashlib
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROLE = re.compile(r"\{(?P<role>[\w:+-]+)\}`(?P<body>[^`]*)`")
DIRECTIVE = re.compile(
    r"^(?P<fence>`{3,}|:{3,})\{(?P<name>[\w-]+)\}[ \t]*(?P<arg>[^\n]*)\n"
    r"(?P<opts>(?:[ \t]*:[\w-]+:[^\n]*\n)*)"
    r"(?P<body>.*?)^(?P=fence)[ \t]*$", re.M | re.S)
TARGET = re.compile(r"^\([\w-]+\)=[ \t]*\n", re.M)          # (label)= lines
COMMENT = re.compile(r"^%[^\n]*\n", re.M)                   # MyST comments
ADMONITIONS = {"note", "tip", "hint", "important", "warning", "caution", "attention",
               "danger", "error", "seealso", "admonition"}
RAW_MYST = re.compile(r"\{[\w:+-]+\}`|^(`{3,}|:{3,})\{", re.M)


def colab_url(chapter: str) -> str:
    """The Colab address of a chapter's notebook, from _config.yml's repository."""
    import yaml
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    repo = cfg["repository"]["url"].rstrip("/").split("github.com/", 1)[1]
    branch = cfg["repository"].get("branch", "main")
    return (f"{cfg['launch_buttons']['colab_url'].rstrip('/')}/github/{repo}/blob/{branch}/"
            f"chapters/{chapter}.ipynb")


def _role(m: re.Match) -> str:
    role, body = m.group("role"), m.group("body")
    if role.startswith("glue"):
        return f"`{body.split(':', 1)[0]}`"
    if role == "doc":
        title, target = (re.match(r"(.*?)\s*<(.+)>$", body).groups() if "<" in body
                         else (body, body))
        return f"[{title}]({colab_url(Path(target).name)})"
    if role == "math":
        return f"${body}$"
    return re.sub(r"\s*<[^>]+>$", "", body)          # {ref}`text <label>` -> text


def _directive(m: re.Match, counter: list) -> str:
    name, arg = m.group("name"), m.group("arg").strip()
    body = m.group("body").strip("\n").rstrip()    # keep an indented code block intact
    body = DIRECTIVE.sub(lambda inner: _directive(inner, counter), body)
    if name == "exercise":
        counter[0] += 1
        title = f" ({arg})" if arg else ""
        return f"**Exercise {counter[0]}{title}.** {body}"
    if name == "solution":
        return f"<details>\n<summary>Solution</summary>\n\n{body}\n\n</details>"
    if name in ADMONITIONS:
        title = arg or name.capitalize()
        quoted = "\n".join(f"> {line}" if line else ">" for line in body.splitlines())
        return f"> **{title}.**\n>\n{quoted}"
    if name in ("figure", "image"):
        return f"![{body or arg}]({arg})"
    return body


def plain_markdown(text: str, counter: list) -> str:
    """One Markdown cell without MyST: roles, directives, targets and comments resolved."""
    text = COMMENT.sub("", TARGET.sub("", text))
    text = DIRECTIVE.sub(lambda m: _directive(m, counter), text)
    return ROLE.sub(_role, text)


def colab_notebook(md: Path):
    """The Colab notebook of a chapter: jupytext's reading of the .md, cleaned."""
    import jupytext
    import nbformat

    nb = jupytext.read(md)
    counter, seen = [0], set()
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = plain_markdown(cell.source, counter)
        else:
            cell.outputs, cell.execution_count = [], None
        cell.metadata.pop("vscode", None)
        base = hashlib.sha1(f"{cell.cell_type}\n{cell.source}".encode()).hexdigest()[:8]
        cell.id, n = base, 1
        while cell.id in seen:
            cell.id, n = f"{base}-{n}", n + 1
        seen.add(cell.id)
    heading = next(i for i, c in enumerate(nb.cells) if c.cell_type == "markdown")
    nb.cells.insert(heading + 1, nbformat.v4.new_markdown_cell(
        "*A chapter of the Fine-Pruning course book. In Colab, choose a GPU runtime, then "
        "Runtime → Run all. Numbers in the text appear as `names`: each is printed under the "
        "cell that computes it.*", id="colab-note"))
    nb.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python",
                                  "name": "python3"},
                   "language_info": {"name": "python"},
                   "colab": {"provenance": []}}
    return nb


def render(md: Path) -> str:
    import nbformat
    return nbformat.writes(colab_notebook(md)) + "\n"


def raw_myst(nb) -> list[str]:
    """Markdown cells of a notebook that still hold MyST (empty when clean)."""
    return [c.source[:80] for c in nb.cells
            if c.cell_type == "markdown" and RAW_MYST.search(c.source)]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sources", nargs="*", type=Path, help="chapters/NN_name.md files")
    p.add_argument("--check", action="store_true", help="only check, write nothing")
    args = p.parse_args(argv)
    sources = args.sources or sorted((ROOT / "chapters").glob("[0-9][0-9]_*.md"))
    stale = []
    for md in sources:
        out, text = md.with_suffix(".ipynb"), render(md)
        if args.check:
            if not out.exists() or out.read_text(encoding="utf-8") != text:
                stale.append(out)
        else:
            out.write_text(text, encoding="utf-8")
    for out in stale:
        print(f"stale: {out} (regenerate: python -m tools.colab {out.with_suffix('.md')})",
              file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
