"""coursetools: the machinery around the course, not its content.

- ``coursetools.main``       the main job (``make run``): every lecture executed, samples graded, report, site
- ``coursetools.notebooks``  executes a notebook in a fresh kernel at a budget (main job and tests)
- ``coursetools.site``       the static site of the executed lectures (Sphinx, offline MathJax)
- ``coursetools.browser``    headless Chromium for the site's and JupyterLab's browser checks

Nothing here is copied into the grading sandbox, and ``course_lib`` never imports it.
"""
