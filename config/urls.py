"""URL routes: a home page, the admin, and the debug toolbar in development."""

from django.conf import settings
from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path
from django.views.generic import TemplateView

# The admin's "View site" link goes to the home page (site_url "/", Django's default).
admin.site.site_header = "django-pg-repositories"
admin.site.site_title = "django-pg-repositories admin"
admin.site.index_title = "Demo data"

urlpatterns: list[URLPattern | URLResolver] = [
    path("", TemplateView.as_view(template_name="home.html"), name="home"),
    path("admin/", admin.site.urls),
]

if getattr(settings, "DEBUG_TOOLBAR", False):
    urlpatterns.append(path("__debug__/", include("debug_toolbar.urls")))
