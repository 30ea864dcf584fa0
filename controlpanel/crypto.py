"""Secrets at rest: a model field that stores Fernet tokens, and its write-only form field.

MultiFernet decrypts with any configured key and encrypts with the first, so a
key is rotated by prepending a new one and running `manage.py rotate_secrets`.
"""

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django import forms
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models

PREFIX = "fernet:"


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in keys])


def fernet() -> MultiFernet:
    return _fernet(tuple(settings.SECRETS_KEYS))


def encrypt(plain: str) -> str:
    return PREFIX + fernet().encrypt(plain.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return fernet().decrypt(token.removeprefix(PREFIX).encode()).decode()
    except InvalidToken:
        raise ImproperlyConfigured(
            "A stored secret cannot be decrypted with RESTORABLE_SECRETS_KEY(S): "
            "the key was changed without keeping the old one."
        ) from None


def rotate(token: str) -> str:
    return PREFIX + fernet().rotate(token.removeprefix(PREFIX).encode()).decode()


class Secret(str):
    """A decrypted value whose repr never shows it (logs, tracebacks, debug pages)."""

    def __repr__(self) -> str:
        return "Secret('********')"


class EncryptedTextField(models.TextField):
    """Stores a Fernet token; Python code sees the plain text as a Secret."""

    def from_db_value(self, value, expression, connection):
        if value is None or value == "":
            return value
        return Secret(decrypt(value))

    def to_python(self, value):
        if value is None or isinstance(value, Secret) or not value.startswith(PREFIX):
            return value
        return Secret(decrypt(value))

    def get_prep_value(self, value):
        if value is None or value == "":
            return value
        return encrypt(str(value))

    def formfield(self, **kwargs):
        return SecretField(required=not self.blank, label=self.verbose_name.capitalize())


class SecretInput(forms.PasswordInput):
    """Never renders the stored value back; says whether one is set instead."""

    template_name = "controlpanel/widgets/secret.html"

    def __init__(self, attrs=None):
        super().__init__(attrs, render_value=False)

    def get_context(self, name, value, attrs):
        context = super().get_context(name, None, attrs)
        context["widget"]["is_set"] = bool(value)
        return context


class SecretField(forms.CharField):
    widget = SecretInput

    def __init__(self, **kwargs):
        kwargs.setdefault("strip", False)
        super().__init__(**kwargs)
        self.help_text = self.help_text or "Write-only: leave empty to keep the stored value."

    def prepare_value(self, value):
        return value  # the widget only looks at whether there is one
