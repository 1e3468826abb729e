"""Generated data for the Django admin corpus app: a superuser, 300 authors and 6000 books (deterministic)."""

import datetime
import os
import random
from decimal import Decimal

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "corpus_admin.settings")

import django

django.setup()

from django.contrib.auth.models import User  # noqa: E402
from library.models import Author, Book  # noqa: E402

WORDS = [
    "river",
    "stone",
    "garden",
    "night",
    "silver",
    "winter",
    "empire",
    "shadow",
    "glass",
    "letter",
    "ocean",
    "crown",
    "iron",
    "forest",
]
COUNTRIES = ["France", "Japan", "Kenya", "Brazil", "Canada", "India", "Norway", "Chile"]

rng = random.Random(13)
User.objects.create_superuser("admin", "admin@example.com", os.environ["CORPUS_PASSWORD"])
authors = Author.objects.bulk_create(
    Author(name=f"{rng.choice(WORDS).title()} {rng.choice(WORDS).title()}son {i}", country=rng.choice(COUNTRIES))
    for i in range(300)
)
Book.objects.bulk_create(
    Book(
        title=" ".join(rng.choice(WORDS) for _ in range(3)).title() + f" {i}",
        author=rng.choice(authors),
        isbn=f"978-{rng.randrange(10**9):09d}",
        published=datetime.date(1950, 1, 1) + datetime.timedelta(days=rng.randrange(27000)),
        price=Decimal(rng.randrange(500, 9000)) / 100,
        in_stock=rng.random() < 0.7,
    )
    for i in range(6000)
)
