from django.urls import path

from drills import views

urlpatterns = [
    path("databases/<str:name>/drill/", views.database_drill, name="database-drill"),
    path("databases/<str:name>/pitr/drill/", views.database_pitr_drill, name="database-pitr-drill"),
    path("databases/<str:name>/pitr/restore/", views.database_pitr_restore, name="database-pitr-restore"),
    path("runs/<int:pk>/verify/", views.run_verify, name="run-verify"),
    path("runs/<int:pk>/restore/", views.run_restore, name="run-restore"),
    path("drills/<int:pk>/", views.drill_detail, name="drill-detail"),
    path("verifications/<int:pk>/", views.verification_detail, name="verification-detail"),
    path("restores/<int:pk>/", views.restore_detail, name="restore-detail"),
    path("sandboxes/", views.sandbox_list, name="sandbox-list"),
]
