"""Forms of sign-in and token settings (CSRF-protected by Flask-WTF)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, Length

from app.auth.services import MAX_TOKEN_LABEL


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


class TokenForm(FlaskForm):
    label = StringField("Label", validators=[DataRequired(), Length(max=MAX_TOKEN_LABEL)],
                        description="What the token is for, e.g. “chat-ops bot”.")
