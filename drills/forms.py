import re
import zoneinfo

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone

from backups.models import Database
from controlpanel.forms import StorableTextMixin
from drills.models import Restore

NAME = re.compile(r"^[A-Za-z_][\w$]{0,62}$")


class RestoreForm(StorableTextMixin, forms.Form):
    target = forms.ChoiceField(choices=Restore.Target.choices, widget=forms.RadioSelect, initial=Restore.Target.SANDBOX)
    keep_hours = forms.IntegerField(min_value=1, max_value=336, initial=4, label="Keep the sandbox for (hours)")
    target_database = forms.ModelChoiceField(queryset=Database.objects.all(), required=False,
                                             label="Server (of a registered database)")
    target_dbname = forms.CharField(required=False, max_length=63, label="New database name")
    tables = forms.CharField(required=False, label="Only these tables",
                             help_text="schema.table, comma-separated; empty restores everything")
    confirmation = forms.CharField(required=False, max_length=63, label="Type the new database's name to overwrite it",
                                   help_text="Only needed when a database of that name already exists.")
    confirm_source = forms.CharField(max_length=63, label="Type the name of the database being restored to confirm")

    def __init__(self, *args, source_name: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self.source_name = source_name
        self.fields["confirm_source"].help_text = f"Type {source_name} to confirm this restore."

    def clean_confirm_source(self):
        value = self.cleaned_data["confirm_source"]
        if value != self.source_name:
            raise ValidationError(f"Type {self.source_name} exactly to confirm.")
        return value

    def clean_tables(self):
        names = [t.strip() for t in (self.cleaned_data.get("tables") or "").split(",") if t.strip()]
        for name in names:
            if not all(NAME.match(part) for part in name.split(".")) or name.count(".") > 1:
                raise ValidationError(f"{name!r} is not a table name (schema.table).")
        return names

    def clean(self):
        cleaned = super().clean()
        assert cleaned is not None  # Django's Form.clean() returns cleaned_data
        if cleaned.get("target") == Restore.Target.NEW_DATABASE:
            if not cleaned.get("target_database"):
                self.add_error("target_database", "Choose the server to restore onto.")
            name = cleaned.get("target_dbname") or ""
            if not NAME.match(name):
                self.add_error("target_dbname", "Give the new database a name (letters, digits, _).")
        return cleaned


class PitrRestoreForm(StorableTextMixin, forms.Form):
    """A point-in-time restore into a sandbox: a moment inside the recovery window, or the latest."""

    latest = forms.BooleanField(required=False, initial=True, label="The latest archived point")
    target_time = forms.DateTimeField(
        required=False, label="Or this moment",
        input_formats=["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local", "step": "1"}, format="%Y-%m-%dT%H:%M:%S"),
    )
    keep_hours = forms.IntegerField(min_value=1, max_value=336, initial=4, label="Keep the sandbox for (hours)")
    confirm_source = forms.CharField(max_length=63, label="Type the name of the database being restored to confirm")

    def __init__(self, *args, database, window, **kwargs):
        super().__init__(*args, **kwargs)
        self.database, self.window = database, window
        self.zone = zoneinfo.ZoneInfo(database.timezone)
        self.fields["target_time"].help_text = f"In {database.timezone}, to the second."
        self.fields["confirm_source"].help_text = f"Type {database.name} to confirm this restore."

    def clean_confirm_source(self):
        value = self.cleaned_data["confirm_source"]
        if value != self.database.name:
            raise ValidationError(f"Type {self.database.name} exactly to confirm.")
        return value

    def full_clean(self):
        # The browser sends wall-clock time, which means the database's zone:
        # read it there (a time that zone skips or repeats is refused there,
        # whatever the panel's own zone).
        with timezone.override(self.zone):
            super().full_clean()

    def clean(self):
        cleaned = super().clean()
        assert cleaned is not None  # Django's Form.clean() returns cleaned_data
        target = cleaned.get("target_time")
        if "target_time" in self.errors:
            return cleaned
        if target is None and not cleaned.get("latest"):
            self.add_error("target_time", "Choose a moment, or the latest archived point.")
        elif target is not None:
            cleaned["latest"] = False
            fmt = "%Y-%m-%d %H:%M:%S %Z"
            if target > timezone.now():
                self.add_error("target_time", "That moment is in the future: nothing has been archived for it yet.")
            elif self.window.earliest and target < self.window.earliest:
                self.add_error("target_time", "That moment is before the end of the oldest base backup "
                                              f"({self.window.earliest.astimezone(self.zone):{fmt}}).")
            elif self.window.latest and target > self.window.latest:
                self.add_error("target_time", "That moment is after the last archived WAL segment as of the last "
                                              f"check ({self.window.latest.astimezone(self.zone):{fmt}}); choose "
                                              "the latest archived point instead.")
        if not self.window.usable:
            raise ValidationError("The repository holds no base backup yet: take one before restoring to a point "
                                  "in time.")
        return cleaned
