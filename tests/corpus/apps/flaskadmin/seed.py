"""Generated data for the Flask-Admin corpus app: 500 customers, 120 products, 8000 orders (deterministic)."""

import datetime
import random
from decimal import Decimal

from shop_admin import Customer, Order, Product, app, db

CITIES = ["Lyon", "Osaka", "Nairobi", "Recife", "Calgary", "Pune", "Bergen", "Valparaiso"]
WORDS = ["amber", "basil", "cobalt", "delta", "ember", "fjord", "garnet", "harbor", "indigo", "jasper", "kelp", "lumen"]
STATUSES = ["pending", "paid", "shipped", "delivered", "returned"]
rng = random.Random(13)

with app.app_context():
    db.create_all()
    customers = [
        Customer(name=f"{rng.choice(WORDS).title()} {i}", email=f"c{i}@example.com", city=rng.choice(CITIES))
        for i in range(500)
    ]
    products = [
        Product(name=f"{rng.choice(WORDS)} {i}", price=Decimal(rng.randrange(100, 20000)) / 100) for i in range(120)
    ]
    db.session.add_all(customers + products)
    db.session.flush()
    db.session.add_all(
        Order(
            customer_id=rng.choice(customers).id,
            product_id=rng.choice(products).id,
            quantity=rng.randrange(1, 9),
            created=datetime.date(2020, 1, 1) + datetime.timedelta(days=rng.randrange(1500)),
            status=rng.choice(STATUSES),
        )
        for _ in range(8000)
    )
    db.session.commit()
