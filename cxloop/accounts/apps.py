from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "cxloop.accounts"
    label = "accounts"
