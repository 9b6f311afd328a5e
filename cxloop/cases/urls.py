"""The closed loop's pages: /cases/… (the inbox, a case, an employee's feedback, settings)
and, as ``problem_urls``, /problems/… (the problem register)."""

from django.urls import path

from . import views

app_name = "cases"
urlpatterns = [
    path("", views.inbox, name="inbox"),
    path("me", views.my_page, name="me"),
    path("settings", views.case_settings, name="settings"),
    path("employees/<int:pk>", views.employee_detail, name="employee"),
    path("<int:pk>", views.case_detail, name="detail"),
]

problem_urls = (
    [
        path("", views.problem_list, name="list"),
        path("new", views.problem_new, name="new"),
        path("<int:pk>", views.problem_detail, name="detail"),
    ],
    "problems",
)
