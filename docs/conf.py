"""Sphinx configuration of the noisecorr documentation.

Build: ``python -m sphinx -W -b html docs docs/_build/html`` (warnings are errors, as in CI,
where ``tests/docs/test_site.py`` runs the same build). Nothing is fetched from the network:
intersphinx is off, the theme and every script are local files.
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE / "_ext"))
sys.path.insert(0, str(ROOT))

import noisecorr  # noqa: E402

project = "noisecorr"
author = "noisecorr developers"
copyright = "noisecorr developers, BSD-3-Clause"
release = noisecorr.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
    "sphinx_click",
    "sphinx_gallery.gen_gallery",
    "noisecorr_docs",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "examples/README.rst", "gallery/*.ipynb", "**/*.py.md5",
                    "**/*.codeobj.json", "gallery/sg_execution_times.rst"]
templates_path = ["_templates"]
html_static_path = ["_static"]
html_theme = "alabaster"
html_theme_options = {"description": "ambient-noise cross-correlation on a dataflow engine",
                      "fixed_sidebar": True, "show_powered_by": False}
html_title = f"noisecorr {release}"
html_last_updated_fmt = None

# Formulas are drawn as SVG by matplotlib's mathtext (docs/_ext/noisecorr_docs.py): MathJax
# would come from a CDN and imgmath needs LaTeX; the docs are built and read offline.
html_math_renderer = "mathtext"

myst_enable_extensions = ["dollarmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

autosummary_generate = True
autosummary_imported_members = False
autodoc_default_options = {"members": True, "show-inheritance": False}
autodoc_typehints = "none"
autodoc_member_order = "bysource"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_validation_checks = set()
numpydoc_xref_param_type = False

intersphinx_mapping = {}   # off: nothing fetched

sphinx_gallery_conf = {
    "image_scrapers": ("noisecorr_docs.figure_scraper", "matplotlib"),
    "examples_dirs": "examples",
    "gallery_dirs": "gallery",
    "filename_pattern": r"/plot_",
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    "abort_on_example_error": True,
    "matplotlib_animations": False,
    "show_memory": False,
    "plot_gallery": "True",
    "reference_url": {},
    "write_computation_times": False,
}
html_favicon = "_static/favicon.svg"   # a browser asks for one; without it every page logs a 404


def _skip_shadowed_submodule(app, what, name, obj, skip, options):
    """A package's function named like its own submodule (``noisecorr.interop.select``,
    ``noisecorr.monitoring.measure``) would get the submodule's full name twice; on the
    package's page it is left out (it is documented on that submodule's page)."""
    import inspect

    module = getattr(obj, "__module__", None) or ""
    documenting = app.env.temp_data.get("autodoc:module")  # the page's module, set by autodoc
    if (what == "module" and inspect.isroutine(obj) and module.endswith("." + name)
            and module.rsplit(".", 1)[0] == documenting):
        return True
    return skip


def setup(app):
    app.connect("autodoc-skip-member", _skip_shadowed_submodule)
