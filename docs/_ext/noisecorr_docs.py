"""Sphinx extension of the noisecorr documentation (local, no network).

* ``.. noisecorr-config:: configs/default.yaml`` renders every key of a configuration file
  as a table: the dotted key, its default (the YAML value) and the comment beside it in the
  file. The values come from the YAML parser and the comments from the text, and the build
  fails if a key has no row or a row no key, so the page cannot miss a key.
* A math renderer (``html_math_renderer = "mathtext"``) that draws ``:math:`` and
  ``.. math::`` as SVG images with matplotlib's mathtext, so formulas need neither a LaTeX
  install nor MathJax from a CDN. Mathtext is a TeX subset: one formula per block, no
  ``align`` environments.
* :data:`cli`, the ``noisecorr`` click group (every command, mounted lazily), for
  ``.. click:: noisecorr_docs:cli`` (sphinx-click).
"""

import hashlib
import importlib
import re
from pathlib import Path

import yaml
from docutils import nodes
from docutils.parsers.rst import Directive, directives
from sphinx.errors import ExtensionError
from sphinx.util import logging

logger = logging.getLogger(__name__)


#: The click group of ``noisecorr`` with every lazily mounted command imported: sphinx-click
#: documents the group's ``commands`` mapping, which holds a lazy command only once
#: ``get_command`` has loaded it (without this the page listed ``enact`` and ``stack`` only).
cli = importlib.import_module("noisecorr.cli").cli
for _name in cli.list_commands(None):
    cli.get_command(None, _name)


# -- configuration reference ------------------------------------------------------------------
_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][A-Za-z0-9_]*):(?P<rest>.*)$")


def _split_comment(text):
    """``(value, comment)`` of a YAML line's remainder: the first ``#`` after whitespace and
    outside quotes starts the comment."""
    quote = None
    for i, ch in enumerate(text):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or text[i - 1].isspace()):
            return text[:i].strip(), text[i + 1:].strip()
    return text.strip(), ""


def parse_config_comments(text):
    """Walk a commented YAML file.

    Returns ``(rows, sections)``: ``rows`` is a list of ``(dotted key, comment, section)`` in
    file order, where a comment is the text after ``#`` on the key's line joined with the
    indented comment lines (and the comments of value continuation lines) that follow it;
    ``section`` is the title of the last ``# --- title ---`` line above it.
    """
    rows, stack, section = [], [], ""
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("#"):
            title = re.match(r"^#\s*-+\s*(.*?)\s*-*\s*$", line)
            if title and title.group(1):
                section = title.group(1)
            continue
        m = _KEY.match(line)
        if m:
            indent = len(m.group("indent"))
            while stack and stack[-1][0] >= indent:
                stack.pop()
            stack.append((indent, m.group("key")))
            _, comment = _split_comment(m.group("rest"))
            rows.append([".".join(k for _, k in stack), comment, section])
            continue
        # an indented comment or a value continued on the next line: its comment goes on
        _, comment = _split_comment(line)
        if comment and rows:
            rows[-1][1] = f"{rows[-1][1]} {comment}".strip()
    return [tuple(r) for r in rows]


def _flatten(mapping, prefix=""):
    out = {}
    for key, value in mapping.items():
        dotted = f"{prefix}{key}"
        out[dotted] = value
        if isinstance(value, dict):
            out.update(_flatten(value, dotted + "."))
    return out


def config_rows(path):
    """``[(dotted key, default, comment, section), ...]`` of a configuration file; raises
    :class:`ValueError` naming the keys that the text and the YAML parser disagree on."""
    text = Path(path).read_text()
    values = _flatten(yaml.safe_load(text) or {})
    rows = parse_config_comments(text)
    keys = [r[0] for r in rows]
    missing, extra = sorted(set(values) - set(keys)), sorted(set(keys) - set(values))
    if missing or extra:
        raise ValueError(f"{path}: keys without a row {missing}, rows without a key {extra}")
    return [(key, values[key], comment, section) for key, comment, section in rows]


def _default_text(value):
    if isinstance(value, dict):
        return "(section)"
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("...").strip()


class ConfigDirective(Directive):
    """``.. noisecorr-config:: PATH`` (relative to the repository root)."""

    required_arguments = 1
    has_content = False
    option_spec = {"class": directives.class_option}

    def run(self):
        env = self.state.document.settings.env
        path = Path(env.srcdir).parent / self.arguments[0]
        env.note_dependency(str(path))
        try:
            rows = config_rows(path)
        except (OSError, ValueError, yaml.YAMLError) as exc:
            raise self.error(f"noisecorr-config: {exc}")
        result, current, table, tbody = [], None, None, None
        for key, value, comment, section in rows:
            if section != current or table is None:
                current = section
                if section:
                    result.append(nodes.rubric(text=section))
                table, tbody = self._table()
                result.append(table)
            row = nodes.row()
            for cell in (nodes.literal(text=key), nodes.literal(text=_default_text(value)), nodes.Text(comment)):
                entry = nodes.entry()
                entry += nodes.paragraph("", "", cell)
                row += entry
            tbody += row
        return result

    @staticmethod
    def _table():
        table = nodes.table(classes=["noisecorr-config"])
        group = nodes.tgroup(cols=3)
        table += group
        for width in (22, 18, 60):
            group += nodes.colspec(colwidth=width)
        head = nodes.thead()
        row = nodes.row()
        for title in ("key", "default", "meaning"):
            entry = nodes.entry()
            entry += nodes.paragraph(text=title)
            row += entry
        head += row
        group += head
        body = nodes.tbody()
        group += body
        return table, body


# -- math as SVG through matplotlib's mathtext -------------------------------------------------
_SUBSTITUTIONS = [
    (re.compile(r"\\[Bb]igg?[lr]?(?![a-zA-Z])"), ""),        # sizes: mathtext sizes nothing by hand
    (re.compile(r"\\(?:text|operatorname|textrm)\{"), r"\\mathrm{"),
    (re.compile(r"\\[dt]frac(?![a-zA-Z])"), r"\\frac"),
    (re.compile(r"\\le(?![a-zA-Z])"), r"\\leq"),
    (re.compile(r"\\ge(?![a-zA-Z])"), r"\\geq"),
    (re.compile(r"\\(?:displaystyle|textstyle)(?![a-zA-Z])"), ""),
    (re.compile(r"&|\\\\"), " "),                              # alignment marks, line breaks
]


def _to_mathtext(latex):
    """The LaTeX of a formula in the subset that mathtext draws (same meaning)."""
    latex = " ".join(latex.split())
    for pattern, repl in _SUBSTITUTIONS:
        latex = pattern.sub(repl, latex)
    return latex


def _math_svg(self, latex, display):
    """Write the SVG of one formula under ``_images/math`` and return its URI from this page."""
    from matplotlib import mathtext

    latex = _to_mathtext(latex)
    name = hashlib.sha1(f"{display}:{latex}".encode()).hexdigest()[:16] + ".svg"
    target = Path(self.builder.outdir) / self.builder.imagedir / "math" / name
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            mathtext.math_to_image(f"${latex}$", str(target), dpi=100, format="svg",
                                   prop=None)
        except ValueError as exc:
            raise ExtensionError(f"{self.builder.current_docname}: mathtext cannot draw {latex!r}: {exc}")
    return f"{self.builder.imgpath}/math/{name}"


def _visit_inline(self, node):
    uri = _math_svg(self, node.astext(), False)
    alt = self.encode(node.astext())
    self.body.append(f'<img class="math" src="{uri}" alt="{alt}" style="vertical-align: middle"/>')
    raise nodes.SkipNode


def _visit_block(self, node):
    latex = node.astext()
    parts = [p for p in latex.split("\n\n") if p.strip()]
    self.body.append(self.starttag(node, "div", CLASS="math"))
    for part in parts:
        uri = _math_svg(self, part, True)
        self.body.append(f'<p><img src="{uri}" alt="{self.encode(part.strip())}"/></p>')
    self.body.append("</div>\n")
    raise nodes.SkipNode


def setup(app):
    app.add_directive("noisecorr-config", ConfigDirective)
    app.add_html_math_renderer("mathtext", (_visit_inline, None), (_visit_block, None))
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}


# -- sphinx-gallery: figures that noisecorr's plot functions return ----------------------------
def figure_scraper(block, block_vars, gallery_conf, **kwargs):
    """Save every :class:`matplotlib.figure.Figure` bound to a name of the example that was
    not shown yet: noisecorr's plot functions return figures outside pyplot (no global
    state), so the default matplotlib scraper does not see them; pyplot's figures it does."""
    from matplotlib.figure import Figure
    from sphinx_gallery.scrapers import figure_rst

    from matplotlib._pylab_helpers import Gcf

    shown = block_vars.setdefault("noisecorr_shown", set())
    # pyplot's figures are the matplotlib scraper's (run after this one, it closes them)
    shown.update(id(m.canvas.figure) for m in Gcf.get_all_fig_managers())
    paths = []
    for value in list(block_vars["example_globals"].values()):
        if isinstance(value, Figure) and id(value) not in shown:
            shown.add(id(value))
            path = next(block_vars["image_path_iterator"])
            value.savefig(path, dpi=90)
            paths.append(path)
    return figure_rst(paths, gallery_conf["src_dir"])
