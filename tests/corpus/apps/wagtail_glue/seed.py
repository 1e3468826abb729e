"""Generated content for the Wagtail corpus site: a superuser, 60 pages under the home page and 40 photos
(Pillow draws them; Wagtail makes their renditions when a page first shows them)."""

import io
import os
import random

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "corpussite.settings.production")

import django

django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.core.files.images import ImageFile  # noqa: E402
from home.models import HomePage  # noqa: E402
from PIL import Image as PILImage  # noqa: E402
from PIL import ImageDraw  # noqa: E402
from wagtail.images.models import Image  # noqa: E402

WORDS = [
    "harbour",
    "lantern",
    "meadow",
    "quartz",
    "orchard",
    "summit",
    "velvet",
    "cinder",
    "tundra",
    "marble",
    "falcon",
    "willow",
]
rng = random.Random(13)

User.objects.create_superuser("admin", "admin@example.com", os.environ["CORPUS_PASSWORD"])
home = HomePage.objects.get(depth=2)
for i in range(60):
    title = f"{rng.choice(WORDS).title()} {rng.choice(WORDS)} {i}"
    home.add_child(instance=HomePage(title=title, slug=f"page-{i}"))
for i in range(40):
    picture = PILImage.effect_noise((1600, 1200), 60).convert("RGB")
    draw = ImageDraw.Draw(picture)
    for _ in range(30):
        x, y = rng.randrange(1600), rng.randrange(1200)
        draw.ellipse(
            (x, y, x + rng.randrange(50, 400), y + rng.randrange(50, 400)), fill=tuple(rng.choices(range(256), k=3))
        )
    data = io.BytesIO()
    picture.save(data, "JPEG", quality=90)
    Image.objects.create(title=f"{rng.choice(WORDS).title()} photo {i}", file=ImageFile(data, name=f"photo{i}.jpg"))
