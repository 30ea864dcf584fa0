from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

from controlpanel import views
from controlpanel.site import metrics
from controlpanel.site import views as site_views

urlpatterns = [
    path("", site_views.overview, name="overview"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("audit/", views.audit_log, name="audit-log"),
    path("<str:kind>/<int:pk>/cancel/", views.job_cancel, name="job-cancel"),
    path("channels/", views.channel_list, name="channel-list"),
    path("channels/add/", views.channel_add, name="channel-add"),
    path("channels/<str:name>/edit/", views.channel_edit, name="channel-edit"),
    path("channels/<str:name>/test/", views.channel_test, name="channel-test"),
    path("channels/<str:name>/delete/", views.channel_delete, name="channel-delete"),
    # Clients that ignore <link rel=icon> (feed readers, old browsers) still ask here.
    path("favicon.ico", login_not_required(RedirectView.as_view(url=static("favicon.svg"), permanent=True)),
         name="favicon"),
    path("health/live", views.health_live, name="health-live"),
    path("health/ready", views.health_ready, name="health-ready"),
    path("metrics", metrics.metrics, name="metrics"),
    path("admin/", admin.site.urls),
    path("", include("backups.urls")),
    path("", include("drills.urls")),
    # After the apps' routes: "databases/add/" is not a database named "add".
    path("databases/<str:name>/", site_views.database_detail, name="database-detail"),
]
