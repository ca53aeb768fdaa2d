"""The browser demo: a static page at `/` that uses only the public API."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

router = APIRouter(include_in_schema=False)


@router.get("/")
def demo_page() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html")


@router.get("/studies")
@router.get("/studies/{study_id}")
def studies_page() -> FileResponse:
    """The studies page; which study it shows is read from the path by the page itself."""
    return FileResponse(STATIC_DIR / "studies.html", media_type="text/html")
