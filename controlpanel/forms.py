"""Form pieces shared by the apps: write-only secret inputs, storable text."""

from django import forms
from django.core.exceptions import ValidationError

from controlpanel.crypto import EncryptedTextField
from controlpanel.models import NotificationChannel
from controlpanel.notify import understands


def validate_storable_text(value: str) -> None:
    """Refuse lone surrogates: Python's stand-ins for bytes that are not UTF-8
    (argv, the environment), which PostgreSQL cannot store."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError("This text holds bytes that are not valid UTF-8.") from None


class StorableTextMixin(forms.BaseForm):
    """Every text field of the form refuses what the database cannot store,
    so a save never fails on it (Django already refuses NUL)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            if isinstance(field, forms.CharField):
                field.validators.append(validate_storable_text)


class KeepSecretsModelForm(StorableTextMixin, forms.ModelForm):
    """A ModelForm whose empty secret inputs keep the stored value."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in self.secret_field_names():
            if self.instance.pk and getattr(self.instance, name):
                self.fields[name].required = False

    def secret_field_names(self) -> list[str]:
        return [
            f.name
            for f in self._meta.model._meta.get_fields()
            if isinstance(f, EncryptedTextField) and f.name in self.fields
        ]

    def clean(self):
        cleaned = super().clean()
        assert cleaned is not None  # Django's Form.clean() returns cleaned_data
        for name in self.secret_field_names():
            if not cleaned.get(name) and self.instance.pk:
                cleaned[name] = getattr(self.instance, name)
        return cleaned


class ChannelForm(KeepSecretsModelForm):
    """A notification channel; its apprise URL holds tokens, so it is write-only."""

    events = forms.MultipleChoiceField(
        required=False, widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every event but the daily digest.",
    )

    class Meta:
        model = NotificationChannel
        fields = ["name", "url", "events", "enabled"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        events = self.fields["events"]
        assert isinstance(events, forms.MultipleChoiceField)  # declared above
        events.choices = NotificationChannel.Event.choices

    def clean_url(self):
        url = self.cleaned_data.get("url") or ""
        if url and not understands(url):
            # Never echo the URL: it carries the service's token.
            raise ValidationError("apprise does not understand this URL; see its URL formats "
                                  "(tgram://, slack://, discord://, mailto://, json://...).")
        return url
