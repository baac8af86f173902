"""Make a submitted notebook safe to render as HTML on the instructor's origin.

Feedback HTML and the formgrader render a student's notebook with nbconvert, and nbconvert copies
raw HTML in markdown, raw cells, rich outputs, widget state and several metadata fields into the
page as they are. The formgrader page is served by the instructor's Jupyter server, so a script in
a submission would run with the instructor's session. :func:`sanitize_notebook` rebuilds every
channel through which student bytes reach that HTML:

* markdown cells: rendered to HTML with nbconvert's own renderer (the one the templates use, math
  kept as ``$...$`` text for MathJax), that HTML cleaned by nh3 (Ammonia) with a small allow-list,
  and the clean HTML stored back as the cell's source on one line inside a ``<div>``. A one-line
  block that starts with ``<div`` is a single CommonMark HTML block, which the templates' markdown
  renderer copies verbatim, so what the browser parses is exactly nh3's output (sanitising the
  markdown *source* instead would not hold: markdown syntax such as ``[x](javascript:...)`` is not
  HTML to a sanitiser, and escaping ``<`` in the source breaks math and code spans);
* raw cells: turned into markdown cells that show their text in a code block (escaped);
* attachments: only PNG, JPEG and GIF whose bytes really are that format (inlined as data: URLs);
* code cells: the source is left alone (the templates highlight it with Pygments, which escapes);
  outputs keep only streams, errors, ``text/plain`` and real PNG/JPEG/GIF images, with no output
  metadata (widths, filenames and the like go into attributes unescaped) but an image's ``alt`` text
  (plain text, at most :data:`MAX_ALT` characters, which the templates escape);
* cell metadata: only nbgrader's own keys with the types nbgrader writes, ``editable`` and
  ``deletable`` (tags, ``jupyter.source_hidden``, ``transient`` and the rest are dropped); a cell id
  that is not a valid nbformat id is replaced; ``execution_count`` is an int or nothing;
* notebook metadata: only ``kernelspec`` and ``language_info`` with plain string values (widget
  state, which nbconvert embeds in a script tag and which makes it load widget JavaScript from a
  CDN, is dropped).

A cell whose grade id and source are exactly the instructor's (per the gradebook) is the
instructor's text, not the student's: its source is kept byte for byte so that nbgrader's checksum
still recognises an unanswered written question.
"""
from __future__ import annotations

import base64
import binascii
import re
import uuid

import nh3

# ------------------------------------------------------------------ the HTML allow-list
TAGS = {"a", "abbr", "b", "blockquote", "br", "caption", "code", "col", "colgroup", "dd", "del", "details",
        "div", "dl", "dt", "em", "figcaption", "figure", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img",
        "input", "ins", "kbd", "li", "mark", "ol", "p", "pre", "q", "s", "samp", "small", "span", "strike",
        "strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "tt", "u", "ul",
        "var", "wbr"}
# removed with everything inside them (the other disallowed tags are removed, their text kept)
DROP_WITH_CONTENT = {"script", "style", "template", "textarea", "title", "noscript", "iframe", "object", "embed",
                     "xmp", "noembed", "noframes", "plaintext", "select", "svg", "math", "head", "frameset"}
_HEADINGS = {f"h{k}" for k in range(1, 7)}
ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "title", "width", "height"},
              "td": {"colspan", "rowspan", "style"}, "th": {"colspan", "rowspan", "scope", "style"},
              "ol": {"start"}, "input": {"checked"}, "abbr": {"title"},
              **{h: {"id"} for h in _HEADINGS}}
try:
    from pygments.token import STANDARD_TYPES
    _PYGMENTS = {c for c in STANDARD_TYPES.values() if c}
except ImportError:  # pragma: no cover
    _PYGMENTS = set()
WRAPPER_CLASS = "student-markdown"
CLASSES = {"div": {WRAPPER_CLASS, "highlight"}, "span": _PYGMENTS, "a": {"anchor-link"},
           "li": {"task-list-item"}, "input": {"task-list-item-checkbox"}}
ID_PREFIX = "student-"
_RASTER = {"image/png": (b"\x89PNG\r\n\x1a\n",), "image/jpeg": (b"\xff\xd8\xff",),
           "image/gif": (b"GIF87a", b"GIF89a")}
_DATA_URL = re.compile(r"^data:(image/(?:png|jpeg|gif));base64,([A-Za-z0-9+/=\s]*)$", re.I)
_CONTROL = re.compile(r"[\x00-\x20\x7f]+")


def raster_b64(data, mime: str) -> str | None:
    """``data`` as canonical base64 when it is base64 of a real ``mime`` image, else None."""
    if not isinstance(data, str) or mime not in _RASTER:
        return None
    try:
        raw = base64.b64decode(re.sub(r"\s+", "", data), validate=True)
    except (binascii.Error, ValueError):
        return None
    if not raw.startswith(_RASTER[mime]):
        return None
    return base64.b64encode(raw).decode("ascii")


def _prefixed(name: str) -> str:
    return name if name.startswith(ID_PREFIX) else ID_PREFIX + name


def _attribute(tag: str, attr: str, value: str) -> str | None:
    if attr == "href":
        v = _CONTROL.sub("", value)
        if v.startswith("#"):
            return "#" + _prefixed(v[1:])
        return value if re.match(r"^(https?|mailto):", v, re.I) else None  # no javascript:, data:, relative
    if attr == "src":  # images: embedded PNG/JPEG/GIF only (nothing fetched from the student's choice of URL)
        m = _DATA_URL.match(_CONTROL.sub("", value))
        if not m:
            return None
        b64 = raster_b64(m.group(2), m.group(1).lower())
        return f"data:{m.group(1).lower()};base64,{b64}" if b64 else None
    if attr == "id":  # no clobbering of the page's own ids (the formgrader's score inputs use grade ids)
        return _prefixed(value)
    if attr in ("width", "height"):
        return value if re.fullmatch(r"\d{1,4}%?", value.strip()) else None
    if attr in ("colspan", "rowspan", "start"):
        return value if re.fullmatch(r"\d{1,4}", value.strip()) else None
    if attr == "style":  # markdown tables align columns this way; nothing else
        m = re.fullmatch(r"\s*text-align\s*:\s*(left|right|center)\s*;?\s*", value, re.I)
        return f"text-align:{m.group(1).lower()}" if m else None
    return value


CLEANER = nh3.Cleaner(tags=TAGS, clean_content_tags=DROP_WITH_CONTENT, attributes=ATTRIBUTES,
                      attribute_filter=_attribute, strip_comments=True, link_rel="noopener noreferrer nofollow",
                      url_schemes={"http", "https", "mailto", "data"}, allowed_classes=CLASSES,
                      set_tag_attribute_values={"input": {"type": "checkbox", "disabled": "disabled"}})


def clean_html(html: str) -> str:
    """``html`` with nothing left that can run a script, load a resource or restyle the page."""
    return CLEANER.clean(html)


# ------------------------------------------------------------------ markdown
class _Attachments(dict):
    """A cell's attachments; a name it lacks (or whose image was dropped) renders as no image
    instead of failing the whole export."""

    def __contains__(self, name):
        return True

    def __missing__(self, name):
        return {"text/plain": ""}


def render_markdown(source: str, attachments=None) -> str:
    """The HTML nbconvert's templates make of a markdown cell (its ``markdown2html`` filter)."""
    from nbconvert.filters.markdown_mistune import IPythonRenderer, MarkdownWithMath

    renderer = IPythonRenderer(escape=False, attachments=_Attachments(attachments or {}), embed_images=False, path="",
                               anchor_link_text="¶", exclude_anchor_links=False)
    return MarkdownWithMath(renderer=renderer).render(source)


def _fenced(text: str) -> str:
    """Markdown showing ``text`` verbatim in a code block."""
    fence = "`" * max(3, 1 + max((len(m) for m in re.findall(r"`+", text)), default=0))
    return f"{fence}text\n{text}\n{fence}"


NO_ALT = "No description has been provided for this image"  # nbconvert's text for an image without one


def _with_alt(clean: str) -> str:
    """nh3's output with :data:`NO_ALT` on every ``<img>`` that has no ``alt`` (as nbconvert's HTMLExporter
    did by re-parsing the whole page), parsed as HTML (never matched as text: an attribute may hold ``<img``)
    and cleaned by nh3 again, so what reaches a page is still exactly nh3's output."""
    if "<img" not in clean:
        return clean
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(clean, "html.parser")
    images = [img for img in soup.find_all("img") if "alt" not in img.attrs]
    for img in images:
        img["alt"] = NO_ALT
    return clean_html(str(soup)) if images else clean


_DONE: dict = {}  # (source, attachments) -> safe_markdown's answer
REMEMBER_MAX = 4096  # answers a per-process cache keeps (then it starts again)
# a cell longer than this (source and attachments, characters) is not remembered: a notebook may be 50 MiB, and
# 4,096 such cells kept across students would hold gigabytes in the grading worker (found by the red team)
REMEMBER_MAX_CHARS = 64 * 1024


def remember(store: dict, key, size: int, make):
    """``make()``, kept in ``store`` under ``key`` for the rest of the process (the grader's per-process caches of
    answers that depend only on their key, the same for every student), unless ``size`` (characters of student
    text in the key) is over :data:`REMEMBER_MAX_CHARS`; ``store`` starts again at :data:`REMEMBER_MAX` entries."""
    if size > REMEMBER_MAX_CHARS:
        return make()
    if key not in store:
        if len(store) >= REMEMBER_MAX:
            store.clear()
        store[key] = make()
    return store[key]


def safe_markdown(source: str, attachments=None) -> str:
    """A markdown source that renders (through nbconvert's ``markdown2html``) to exactly the
    sanitised HTML of ``source``: one line, ``<div class="student-markdown">...</div>``.
    A function of its arguments only, so each answer is remembered for the process (:func:`remember`): the
    same cell is sanitised three times per submission (autograde twice, feedback once), and most markdown
    cells (the release's own text) are the same for every student."""
    import json

    key = (source, json.dumps(attachments or {}, sort_keys=True))
    return remember(_DONE, key, len(key[0]) + len(key[1]), lambda: _safe_markdown(source, attachments))


def _safe_markdown(source: str, attachments=None) -> str:
    try:
        html = render_markdown(source, attachments)
    except Exception:  # noqa: BLE001 (e.g. a reference to a missing attachment): show the text
        html = render_markdown(_fenced(source))
    clean = _with_alt(clean_html(html)).strip()
    if not (clean.startswith(f'<div class="{WRAPPER_CLASS}">') and clean.endswith("</div>")):
        clean = f'<div class="{WRAPPER_CLASS}">{clean}</div>'
    # no line breaks: the whole cell stays one CommonMark HTML block, copied verbatim by the renderer
    return clean.replace("\r", "&#13;").replace("\n", "&#10;")


# ------------------------------------------------------------------ metadata and outputs
_GRADE_ID = re.compile(r"^[A-Za-z0-9_-]{1,200}$")
_CELL_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_PLAIN = re.compile(r"^[\w .+/()-]{0,80}$")


def _nbgrader_meta(meta):
    if not isinstance(meta, dict) or not isinstance(meta.get("grade_id", ""), str) \
            or not _GRADE_ID.match(meta.get("grade_id", "x")):
        return None
    out = {}
    for k in ("grade", "solution", "locked", "task"):
        if isinstance(meta.get(k), bool):
            out[k] = meta[k]
    if "grade_id" in meta:
        out["grade_id"] = meta["grade_id"]
    if isinstance(meta.get("points"), (int, float)) and not isinstance(meta.get("points"), bool):
        out["points"] = meta["points"]
    if isinstance(meta.get("checksum"), str) and re.fullmatch(r"[0-9a-f]{0,128}", meta["checksum"]):
        out["checksum"] = meta["checksum"]
    if meta.get("cell_type") in ("code", "markdown"):
        out["cell_type"] = meta["cell_type"]
    if isinstance(meta.get("schema_version"), int) and not isinstance(meta.get("schema_version"), bool):
        out["schema_version"] = meta["schema_version"]
    return out


def cell_metadata(meta) -> dict:
    """Only what nbgrader needs, with the types nbgrader writes."""
    meta = meta if isinstance(meta, dict) else {}
    out = {}
    nbg = _nbgrader_meta(meta.get("nbgrader")) if "nbgrader" in meta else None
    if nbg is not None:
        out["nbgrader"] = nbg
    for k in ("editable", "deletable"):
        if isinstance(meta.get(k), bool):
            out[k] = meta[k]
    return out


def notebook_metadata(meta) -> dict:
    meta = meta if isinstance(meta, dict) else {}
    out = {}
    ks = meta.get("kernelspec")
    if isinstance(ks, dict):
        ks = {k: ks[k] for k in ("name", "display_name", "language") if isinstance(ks.get(k), str)
              and _PLAIN.match(ks[k])}
        if ks:
            out["kernelspec"] = ks
    li = meta.get("language_info")
    if isinstance(li, dict):
        keep = {k: li[k] for k in ("name", "version", "mimetype", "file_extension", "pygments_lexer",
                                   "nbconvert_exporter") if isinstance(li.get(k), str) and _PLAIN.match(li[k])}
        cm = li.get("codemirror_mode")
        if isinstance(cm, str) and _PLAIN.match(cm):
            keep["codemirror_mode"] = cm
        elif isinstance(cm, dict) and isinstance(cm.get("name"), str) and _PLAIN.match(cm["name"]):
            keep["codemirror_mode"] = {"name": cm["name"]}
            if isinstance(cm.get("version"), int) and not isinstance(cm.get("version"), bool):
                keep["codemirror_mode"]["version"] = cm["version"]
        if keep:
            out["language_info"] = keep
    return out


def _text(value) -> str:
    if isinstance(value, list):
        return "".join(v for v in value if isinstance(v, str))
    return value if isinstance(value, str) else ""


def _count(value):
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def safe_outputs(outputs) -> list:
    """Streams, errors, plain text and real raster images; nothing that renders as HTML."""
    from nbformat.v4 import new_output

    out = []
    for o in outputs if isinstance(outputs, list) else []:
        if not isinstance(o, dict):
            continue
        kind = o.get("output_type")
        if kind == "stream":
            out.append(new_output("stream", name="stderr" if o.get("name") == "stderr" else "stdout",
                                  text=_text(o.get("text"))))
        elif kind == "error":
            tb = o.get("traceback")
            out.append(new_output("error", ename=_text(o.get("ename")), evalue=_text(o.get("evalue")),
                                  traceback=[t for t in tb if isinstance(t, str)] if isinstance(tb, list) else []))
        elif kind in ("execute_result", "display_data"):
            data = o.get("data") if isinstance(o.get("data"), dict) else {}
            keep = {}
            if "text/plain" in data:
                keep["text/plain"] = _text(data["text/plain"])
            for mime in _RASTER:
                b64 = raster_b64(_text(data.get(mime)), mime) if mime in data else None
                if b64:
                    keep[mime] = b64
            if not keep:
                continue
            meta = _alt_metadata(o.get("metadata"), keep)
            if kind == "execute_result":
                out.append(new_output(kind, data=keep, metadata=meta, execution_count=_count(o.get("execution_count"))))
            else:
                out.append(new_output(kind, data=keep, metadata=meta))
    return out


MAX_ALT = 1000  # characters of an image's alt text kept


def _alt_metadata(meta, kept: dict) -> dict:
    """``{mime: {"alt": text}}`` for each image kept whose metadata gives a string alt (whitespace squeezed)."""
    out = {}
    for mime in (m for m in _RASTER if m in kept):
        entry = meta.get(mime) if isinstance(meta, dict) else None
        alt = entry.get("alt") if isinstance(entry, dict) else None
        if isinstance(alt, str) and alt.strip():
            out[mime] = {"alt": " ".join(alt.split())[:MAX_ALT]}
    return out


def safe_attachments(attachments) -> dict:
    out = {}
    for name, bundle in (attachments.items() if isinstance(attachments, dict) else []):
        if not isinstance(name, str) or not isinstance(bundle, dict):
            continue
        keep = {m: b for m in _RASTER if m in bundle and (b := raster_b64(_text(bundle[m]), m))}
        if keep:
            out[name] = keep
    return out


# ------------------------------------------------------------------ the notebook
def sanitize_notebook(nb, instructor_sources=None):
    """Rebuild ``nb`` (an nbformat ``NotebookNode``, in place) so that rendering it runs nothing
    the student wrote. ``instructor_sources``: grade id -> the instructor's source of that cell
    (from the gradebook); such a cell, unchanged, keeps its source as is. Idempotent."""
    from nbformat import from_dict

    instructor_sources = instructor_sources or {}
    nb["metadata"] = from_dict(notebook_metadata(nb.get("metadata")))
    seen_ids = set()
    for cell in nb.cells:
        cell["metadata"] = from_dict(cell_metadata(cell.get("metadata")))
        cid = cell.get("id")
        if cid is not None or nb.get("nbformat_minor", 0) >= 5:
            if not (isinstance(cid, str) and _CELL_ID.match(cid)) or cid in seen_ids:
                cell["id"] = uuid.uuid4().hex[:8]
            seen_ids.add(cell["id"])
        src = _text(cell.get("source"))
        if cell.get("cell_type") == "raw":  # shown as text, never as HTML
            cell["cell_type"] = "markdown"
            cell.pop("attachments", None)
            cell["metadata"].pop("nbgrader", None)
            cell["source"] = safe_markdown(_fenced(src))
        elif cell.get("cell_type") == "markdown":
            attachments = safe_attachments(cell.get("attachments"))
            gid = cell["metadata"].get("nbgrader", {}).get("grade_id")
            if gid is not None and instructor_sources.get(gid) == src:
                cell["source"] = src
                if attachments:
                    cell["attachments"] = from_dict(attachments)
                else:
                    cell.pop("attachments", None)
            else:
                cell["source"] = safe_markdown(src, attachments)
                cell.pop("attachments", None)  # inlined into the HTML
        elif cell.get("cell_type") == "code":
            cell["source"] = src
            cell["execution_count"] = _count(cell.get("execution_count"))
            cell["outputs"] = safe_outputs(cell.get("outputs"))
            cell.pop("attachments", None)
        for k in [k for k in cell if k not in ("id", "cell_type", "metadata", "source", "outputs",
                                                "execution_count", "attachments")]:
            del cell[k]
    return nb
