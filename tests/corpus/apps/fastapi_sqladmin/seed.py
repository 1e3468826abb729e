"""Generated data for the FastAPI corpus app: 40 teams and 6000 heroes (deterministic)."""

import random

from heroes import Hero, Team, engine
from sqlmodel import Session, SQLModel

WORDS = ["spark", "dusk", "nova", "tide", "ember", "frost", "quill", "rune", "shade", "storm", "vale", "zephyr"]
rng = random.Random(13)

SQLModel.metadata.create_all(engine)
with Session(engine) as session:
    teams = [Team(name=f"{rng.choice(WORDS).title()} League {i}", headquarters=f"Tower {i}") for i in range(40)]
    session.add_all(teams)
    session.flush()
    session.add_all(
        Hero(
            name=f"{rng.choice(WORDS).title()}-{rng.choice(WORDS)} {i}",
            secret_name=f"Agent {rng.randrange(10**6)}",
            age=rng.randrange(16, 90),
            team_id=rng.choice(teams).id,
        )
        for i in range(6000)
    )
    session.commit()
