"""The CX manager's pages: /surveys/…

Fixed words come before ``<code>/``: a survey may be coded "why", and its page is then
/surveys/why/ (with the slash), never the search page /surveys/why.
"""

from django.urls import path

from . import views

app_name = "surveys"
urlpatterns = [
    path("", views.survey_list, name="list"),
    path("new", views.survey_new, name="new"),
    path("why", views.why, name="why"),
    path("at-risk", views.at_risk, name="at_risk"),
    path("responses/<int:pk>", views.response_detail, name="response"),
    path("<str:code>/", views.survey_detail, name="detail"),
    path("<str:code>/edit", views.survey_edit, name="edit"),
    path("<str:code>/test", views.send_test, name="send_test"),
    path("<str:code>/waves/new", views.wave_new, name="wave_new"),
]
