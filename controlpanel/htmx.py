"""HTMX answers the pages share: toasts, polled fragments and job pages."""

import json

from django.http import HttpResponse
from django.shortcuts import render

# htmx stops polling an element whose request is answered with this status.
STOP_POLLING = 286


def toast(response: HttpResponse, message: str, level: str = "info") -> HttpResponse:
    """A message the page's app.js shows (HX-Trigger)."""
    response["HX-Trigger"] = json.dumps({"toast": {"message": message, "level": level}})
    return response


def poll(request, partial: str, context: dict, *, active: bool) -> HttpResponse:
    """The fragment a page polls: 200 while ACTIVE, then 286 so htmx stops asking."""
    response = render(request, partial, context)
    if request.htmx and not active:
        response.status_code = STOP_POLLING
    return response


def job_page(request, job, partial: str, *, heading: str, parent: str, parent_url: str = "",
             active: bool | None = None, **context) -> HttpResponse:
    """A job's page (controlpanel/job_detail.html around the kind's PARTIAL), or for
    its polling the partial alone. The job is in the context as `job` and under its
    kind's name (run, drill, ...); it polls while ACTIVE (default: the job is)."""
    active = job.is_active if active is None else active
    name = job.page_name
    context = {"job": job, name: job, **context}
    if request.htmx:
        return poll(request, partial, context, active=active)
    return render(request, "controlpanel/job_detail.html", {
        **context, "partial": partial, "heading": heading, "parent": parent, "parent_url": parent_url,
        "polling": active, "progress_id": f"{name}-progress"})
