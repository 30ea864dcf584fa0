"""Toasts for htmx responses: the page's app.js shows them."""

import json

from django.http import HttpResponse


def toast(response: HttpResponse, message: str, level: str = "info") -> HttpResponse:
    response["HX-Trigger"] = json.dumps({"toast": {"message": message, "level": level}})
    return response
