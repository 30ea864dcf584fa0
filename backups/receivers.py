"""Keep each database's django-celery-beat rows in step with it, whichever
way it is edited (panel, CLI or Django admin)."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from backups.models import BackupPolicy, Database, PitrSetup
from backups.schedules import (
    remove_database_schedules,
    sync_database_schedules,
    sync_pitr_heartbeat,
    sync_pitr_schedules,
)


@receiver(post_save, sender=Database)
def database_saved(sender, instance, raw=False, **kwargs):
    if not raw:
        policy, created = BackupPolicy.objects.get_or_create(database=instance)
        if not created:  # a new policy synced itself in policy_saved
            sync_database_schedules(instance, policy=policy)
            setup = PitrSetup.objects.filter(database=instance).first()
            if setup is not None:  # its time zone may have changed

                sync_pitr_schedules(setup)


@receiver(post_save, sender=BackupPolicy)
def policy_saved(sender, instance, raw=False, **kwargs):
    if not raw:
        sync_database_schedules(instance.database, policy=instance)
        setup = PitrSetup.objects.filter(database=instance.database).first()
        if setup is not None:  # the PITR drill follows the drill schedule, an hour later
            sync_pitr_schedules(setup)


@receiver(post_delete, sender=Database)
def database_deleted(sender, instance, **kwargs):
    remove_database_schedules(instance)


@receiver(post_save, sender=PitrSetup)
def pitr_saved(sender, instance, raw=False, **kwargs):
    if not raw:
        sync_pitr_schedules(instance)
        sync_pitr_heartbeat(instance)
