"""Sphinx configuration of the course site (built by ``coursetools.site.build_site``).

The site shows notebooks that were already executed (the main job's ``build/lectures/``), so
myst-nb never runs them again. Everything the pages load comes from the site itself: MathJax is
copied from the pinned ``django-static-mathjax`` wheel into ``_static/mathjax/`` and no theme
option that points at the internet is switched on, so the site reads offline.
"""
project = "Vanishing Gradients and Fancy RNNs"
author = "the course authors"
copyright = "the course authors"

extensions = ["myst_nb"]
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

# the notebooks arrive executed (lectures) or deliberately unexecuted (assignments)
nb_execution_mode = "off"
nb_merge_streams = True
# widgets cannot run on a static page: their outputs are dropped before the build (see
# coursetools/site.py) and the static fallback figure that the explorer drew stays
nb_mime_priority_overrides = [("html", "application/vnd.jupyter.widget-view+json", None),
                              ("html", "application/vnd.jupyter.widget-state+json", None)]

exclude_patterns = ["_build", "**.ipynb_checkpoints"]
suppress_warnings = ["mystnb.unknown_mime_type"]

html_theme = "sphinx_book_theme"
html_title = project
html_static_path = ["_static"]
html_last_updated_fmt = None
html_theme_options = {
    "home_page_in_toc": True,
    "show_toc_level": 2,
    "use_download_button": True,
    "use_fullscreen_button": False,
    "use_repository_button": False,
    "navigation_with_keys": False,
    "search_bar_text": "Search the course...",
}
html_show_sourcelink = False
html_context = {"default_mode": "light"}

# MathJax from the site's own _static folder (a relative mathjax_path is relative to _static)
mathjax_path = "mathjax/tex-chtml.js"
mathjax3_config = {"options": {"enableMenu": False}}
