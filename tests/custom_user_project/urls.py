"""No views: the project exists for its models and repositories."""

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
