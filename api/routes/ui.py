"""``/ui``: the dashboard, a set of static files (HTML, ES modules, CSS) shipped in the
package (``api/ui/``) and served by the API itself, so the page and ``/v1`` share one
origin and one set of API keys. Nothing is built at install time.

The page reads the API with the key its user pastes (kept in the browser tab only), so
these routes need no key themselves: they serve the same files to everyone."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse, Response

from api.errors import problem_response

router = APIRouter(include_in_schema=False)

UI_DIR = Path(__file__).resolve().parent.parent / "ui"

# The page's own files only: no inline scripts or styles, no other origin. Styles set
# from scripts through the CSSOM (element.style.x = ...) are not inline attributes.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
}


def _headers() -> dict[str, str]:
    return {
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        # the files change with the installed version: revalidate rather than guess
        "Cache-Control": "no-cache",
    }


def _file(path: Path) -> Response:
    return FileResponse(path, media_type=_TYPES[path.suffix], headers=_headers())


@router.get("/ui")
def index() -> Response:
    """The dashboard's page; its hash (``#/jobs``, ``#/jobs/<id>``, ...) picks the view."""
    return _file(UI_DIR / "index.html")


@router.get("/ui/")
def index_slash() -> Response:
    return RedirectResponse("/ui", status_code=308)


@router.get("/ui/static/{path:path}")
def static(path: str) -> Response:
    """One of the dashboard's files (scripts, styles, the icon, licences)."""
    found = _resolve(path)
    if found is None:
        return problem_response(
            404, f"the dashboard has no file {path!r}; open /ui for the dashboard"
        )
    return _file(found)


def _resolve(path: str) -> Path | None:
    """The file ``path`` names inside :data:`UI_DIR`, if it is one of the types the
    dashboard serves; None for anything else (including paths that leave the folder)."""
    try:
        found = (UI_DIR / path).resolve()
    except (OSError, ValueError):
        return None
    if not found.is_relative_to(UI_DIR) or not found.is_file() or found.suffix not in _TYPES:
        return None
    return found
