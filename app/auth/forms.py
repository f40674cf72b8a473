"""Forms of sign-in and token settings (CSRF-protected by Flask-WTF)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length

from app.auth.services import MAX_TOKEN_LABEL


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


class TokenForm(FlaskForm):
    label = StringField("Label", validators=[DataRequired(), Length(max=MAX_TOKEN_LABEL)],
                        description="What the token is for, e.g. “chat-ops bot”.")


class PasswordForm(FlaskForm):
    current_password = PasswordField("Current password", validators=[DataRequired(), Length(max=1024)],
                                     description="The one-time password you were given, if you were given one.")
    password = PasswordField("New password", validators=[DataRequired(), Length(max=1024)],
                             description="At least 10 characters.")
    confirm = PasswordField("New password again",
                            validators=[DataRequired(), EqualTo("password", message="the two passwords differ")])
