from django.urls import path

from backups import views

urlpatterns = [
    path("storages/", views.storage_list, name="storage-list"),
    path("storages/add/", views.storage_add, name="storage-add"),
    path("storages/<str:name>/edit/", views.storage_edit, name="storage-edit"),
    path("storages/<str:name>/test/", views.storage_test, name="storage-test"),
    path("storages/<str:name>/delete/", views.storage_delete, name="storage-delete"),
    path("databases/add/", views.database_add, name="database-add"),
    path("databases/<str:name>/edit/", views.database_edit, name="database-edit"),
    path("databases/<str:name>/backup/", views.database_backup, name="database-backup"),
    path("databases/<str:name>/schedule/", views.database_schedule, name="database-schedule"),
    path("schedules/next-runs/", views.next_runs_preview, name="next-runs-preview"),
    path("databases/<str:name>/pitr/", views.database_pitr, name="database-pitr"),
    path("databases/<str:name>/pitr/base-backup/", views.database_base_backup, name="database-base-backup"),
    path("databases/<str:name>/schema-diff/", views.schema_diff, name="schema-diff"),
    path("runs/<int:pk>/", views.run_detail, name="run-detail"),
    path("artifacts/<int:pk>/download/", views.artifact_download, name="artifact-download"),
]
