"""``/api/v1/users``: account administration (admins only). Accounts are deactivated, never deleted."""

from __future__ import annotations

from uuid import UUID

from flask.views import MethodView

from app.api.common import Blueprint, documents, requires
from app.schemas.common import page_body
from app.schemas.users import UserCreateSchema, UserPageSchema, UserQuerySchema, UserSchema, UserUpdateSchema
from app.security import current_actor
from app.services import users

blp = Blueprint("users", __name__, url_prefix="/api/v1/users", description="Accounts (admin).")


@blp.route("")
class Users(MethodView):
    @requires(blp, "admin")
    @blp.arguments(UserQuerySchema, location="query")
    @blp.response(200, UserPageSchema)
    def get(self, query):
        """List accounts, filtered and paginated."""
        return page_body(users.list_users(current_actor(), **query))

    @requires(blp, "admin")
    @blp.arguments(UserCreateSchema)
    @blp.response(201, UserSchema)
    @documents(blp, 409)
    def post(self, data):
        """Create an account of any role (staff and viewers need a clinic; pharmacists a pharmacy)."""
        return users.create_user(current_actor(), data)


@blp.route("/<uuid:user_id>")
class UserById(MethodView):
    @requires(blp, "admin")
    @blp.response(200, UserSchema)
    @documents(blp, 404)
    def get(self, user_id: UUID):
        """One account."""
        return users.get_user(user_id)

    @requires(blp, "admin")
    @blp.arguments(UserUpdateSchema)
    @blp.response(200, UserSchema)
    @documents(blp, 404, 409)
    def patch(self, data, user_id: UUID):
        """Change some fields. A new password signs the user out everywhere."""
        return users.update_user(current_actor(), user_id, data)

    @requires(blp, "admin")
    @blp.response(200, UserSchema)
    @documents(blp, 404, 409)
    def delete(self, user_id: UUID):
        """Deactivate the account (it is kept for the audit trail); its tokens stop working at once."""
        return users.deactivate_user(current_actor(), user_id)
