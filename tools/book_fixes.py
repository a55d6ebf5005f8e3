"""A local Sphinx extension for the course book (listed in _config.yml).

sphinx-thebe 0.3.1 under Sphinx 7.4 puts its inline configuration script
(`const THEBE_JS_URL = ...`) into every page twice (once with filename None,
once with ''), and the second copy throws "Identifier 'THEBE_JS_URL' has already
been declared" in the browser console. This drops repeated <script> entries.
"""


def _key(js):
    return (js.filename or "", js.priority, tuple(sorted(js.attributes.items())))


def _dedupe_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for js in scripts:
        try:
            key = _key(js)
        except AttributeError:  # a plain string: keep it
            unique.append(js)
            continue
        if key not in seen:
            seen.add(key)
            unique.append(js)
    context["script_files"] = unique


def setup(app):
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
