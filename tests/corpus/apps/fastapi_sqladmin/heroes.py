"""The FastAPI corpus app: SQLAdmin's own admin views (async, Jinja templates) over SQLModel models on Postgres
(psycopg; SQLAdmin runs a sync engine's queries in worker threads), and two SQLModel endpoints as in SQLModel's
tutorial: a ``def`` one on that engine and an ``async def`` one on an asyncpg engine."""

import os

from fastapi import FastAPI, HTTPException
from sqladmin import Admin, ModelView
from sqlalchemy.ext.asyncio import create_async_engine
from sqlmodel import Field, Relationship, Session, SQLModel, create_engine, func, select
from sqlmodel.ext.asyncio.session import AsyncSession


class Team(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True)
    headquarters: str


class Hero(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True)
    secret_name: str
    age: int | None = Field(default=None, index=True)
    team_id: int | None = Field(default=None, foreign_key="team.id")
    team: Team | None = Relationship()


engine = create_engine(os.environ["CORPUS_PG_SYNC"], pool_size=10)
async_engine = create_async_engine(os.environ["CORPUS_PG_ASYNC"], pool_size=10)
app = FastAPI()
admin = Admin(app, engine)


class HeroAdmin(ModelView, model=Hero):
    column_list = (
        Hero.id,
        Hero.name,
        Hero.secret_name,
        Hero.age,
        Hero.team,
    )
    column_searchable_list = (Hero.name,)
    column_sortable_list = (
        Hero.name,
        Hero.age,
    )
    page_size = 50


class TeamAdmin(ModelView, model=Team):
    column_list = (
        Team.id,
        Team.name,
        Team.headquarters,
    )


admin.add_view(HeroAdmin)
admin.add_view(TeamAdmin)


@app.get("/api/heroes")
def read_heroes(offset: int = 0, limit: int = 100) -> list[Hero]:
    with Session(engine) as session:
        return list(session.exec(select(Hero).order_by(Hero.age, Hero.name).offset(offset).limit(limit)).all())


@app.get("/api/teams/{team_id}")
async def read_team(team_id: int) -> dict[str, object]:
    async with AsyncSession(async_engine) as session:
        team = await session.get(Team, team_id)
        if team is None:
            raise HTTPException(status_code=404, detail="Team not found")
        heroes = (await session.exec(select(func.count()).select_from(Hero).where(Hero.team_id == team_id))).one()
        return {"id": team.id, "name": team.name, "headquarters": team.headquarters, "heroes": heroes}
