from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "tests.custom_user_project.accounts"
    label = "accounts"
