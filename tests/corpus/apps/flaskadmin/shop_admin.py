"""The Flask-Admin corpus app: Flask-Admin's own model views (Jinja templates, WTForms) over three
Flask-SQLAlchemy models on SQLite."""

import os

from flask import Flask
from flask_admin import Admin
from flask_admin.contrib.sqla import ModelView
from flask_sqlalchemy import SQLAlchemy

db = SQLAlchemy()


class Customer(db.Model):  # type: ignore[name-defined]
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(100), nullable=False)
    email = db.Column(db.String(120), nullable=False)
    city = db.Column(db.String(60), nullable=False)

    def __str__(self) -> str:
        return self.name


class Product(db.Model):  # type: ignore[name-defined]
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String(100), nullable=False)
    price = db.Column(db.Numeric(8, 2), nullable=False)

    def __str__(self) -> str:
        return self.name


class Order(db.Model):  # type: ignore[name-defined]
    id = db.Column(db.Integer, primary_key=True)
    customer_id = db.Column(db.ForeignKey("customer.id"), nullable=False)
    product_id = db.Column(db.ForeignKey("product.id"), nullable=False)
    customer = db.relationship(Customer)
    product = db.relationship(Product)
    quantity = db.Column(db.Integer, nullable=False)
    created = db.Column(db.Date, nullable=False)
    status = db.Column(db.String(20), nullable=False)


class OrderView(ModelView):
    column_list = (
        "id",
        "customer",
        "product",
        "quantity",
        "created",
        "status",
    )
    column_searchable_list = (
        "status",
        "customer.name",
    )
    column_filters = (
        "status",
        "created",
        "quantity",
    )
    page_size = 50


app = Flask(__name__)
app.config.update(
    SECRET_KEY="corpus-flask-admin-not-secret",
    SQLALCHEMY_DATABASE_URI="sqlite:///" + os.environ["CORPUS_DB"],
)
db.init_app(app)
admin = Admin(app, name="shop")
admin.add_view(OrderView(Order, db.session))
admin.add_view(ModelView(Customer, db.session))
admin.add_view(ModelView(Product, db.session))
