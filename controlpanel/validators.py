"""Validators shared by the apps."""

from django.core.validators import RegexValidator

# Names appear in URLs, object keys and beat row names: keep them plain.
name_validator = RegexValidator(
    r"^[a-z0-9][a-z0-9_-]{0,62}$",
    "Use 1-63 lowercase letters, digits, '-' or '_', starting with a letter or digit.",
)
