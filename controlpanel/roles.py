"""The three roles, as Django groups with permissions.

viewer sees everything but secrets (which no page ever shows back); operator
also runs backups, verifications and drills; admin also restores and edits
databases, storages, schedules and secrets.
"""

from django.contrib.auth.models import Group, Permission

VIEWER, OPERATOR, ADMIN = "viewer", "operator", "admin"
ROLES = (VIEWER, OPERATOR, ADMIN)
OUR_APPS = ("backups", "drills", "controlpanel", "django_celery_beat")

OPERATOR_ACTIONS = ("backups.run_backup", "backups.run_base_backup", "drills.run_verification", "drills.run_drill")
ADMIN_ACTIONS = ("drills.run_restore",)


def _perms(codes):
    found: list[Permission] = []
    for code in codes:
        app_label, codename = code.split(".")
        found.extend(Permission.objects.filter(content_type__app_label=app_label, codename=codename))
    return found


def sync_roles(**kwargs) -> None:
    """Create or update the role groups (runs after every migrate)."""
    ours = Permission.objects.filter(content_type__app_label__in=OUR_APPS)
    view = list(ours.filter(codename__startswith="view_"))
    operator = view + _perms(OPERATOR_ACTIONS)
    admin = list(ours) + _perms(ADMIN_ACTIONS)
    for name, perms in ((VIEWER, view), (OPERATOR, operator), (ADMIN, admin)):
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.set(perms)


def role_of(user) -> str | None:
    if not user.is_authenticated:
        return None
    if user.is_superuser:
        return ADMIN
    names = set(user.groups.values_list("name", flat=True))
    for role in (ADMIN, OPERATOR, VIEWER):
        if role in names:
            return role
    return None
