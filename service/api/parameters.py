"""One rule for options on every /v1 route: a query parameter or form field the route does not declare
is refused with 422 `unknown_parameter`, never silently ignored, so a misspelt option or one sent the
wrong way (a form field where the route reads the query) is an error the client sees, not a default
it did not ask for."""

from __future__ import annotations

import weakref
from typing import Any

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel

from service.api.errors import ApiError

FORMS = ("multipart/form-data", "application/x-www-form-urlencoded")


# By route (routes are not hashable): the entry's weak reference tells a live route from a dead one
# whose id was reused.
DECLARED: dict[int, tuple[weakref.ref, tuple[frozenset[str], frozenset[str]]]] = {}


def declared(route: APIRoute) -> tuple[frozenset[str], frozenset[str]]:
    """The route's query parameter names and form field names, its dependencies' included."""
    known = DECLARED.get(id(route))
    if known is not None and known[0]() is route:
        return known[1]
    queries: set[str] = set()
    fields: set[str] = set()
    pending: list[Dependant] = [route.dependant]
    while pending:
        dependant = pending.pop()
        queries.update(name for p in dependant.query_params for name in names(p))
        fields.update(name for p in dependant.body_params for name in names(p))
        pending.extend(dependant.dependencies)
    names_of_route = frozenset(queries), frozenset(fields)
    DECLARED[id(route)] = (weakref.ref(route), names_of_route)
    return names_of_route


def names(param: Any) -> list[str]:
    """A parameter's name, or each field's of a model of parameters (`Annotated[ClipOptions, Query()]`)."""
    model = param.field_info.annotation
    if isinstance(model, type) and issubclass(model, BaseModel):
        return [field.alias or name for name, field in model.model_fields.items()]
    return [param.alias]


async def known_parameters(request: Request) -> None:
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    queries, fields = declared(route)
    problems = [f"query parameter {name!r}" for name in request.query_params if name not in queries]
    if request.headers.get("content-type", "").startswith(FORMS):
        form = await request.form()  # parsed already for the route's own fields: this reads the cache
        for name in form:
            if name not in fields:
                where = " (this route reads it from the query)" if name in queries else ""
                problems.append(f"form field {name!r}{where}")
    if problems:
        raise ApiError(422, "unknown_parameter", f"not an option of this route: {', '.join(sorted(set(problems)))}")
