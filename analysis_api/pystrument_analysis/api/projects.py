"""Project endpoints: seed 5.1.1 create and 5.1.2 list, plus get, update, delete and key rotation."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, delete, get, patch, post, put
from litestar.di import NamedDependency
from litestar.params import JSONBody, PathParameter, QueryParameter
from litestar.status_codes import HTTP_200_OK
from pystrument_collector.db import Database

from pystrument_analysis.api import schemas
from pystrument_analysis.api.services import projects as service
from pystrument_analysis.api.services._common import MAX_PAGE

Page = Annotated[int, QueryParameter(ge=1, le=MAX_PAGE, description="page number, 1-1000000")]
Size = Annotated[int, QueryParameter(ge=1, le=100, description="page size, 1-100")]
ProjectKey = Annotated[str, PathParameter(min_length=1, max_length=64, description="the project's key (proj_...)")]


class ProjectController(Controller):
    """``/api/v1/projects``: projects are identified by their key."""

    path = "/api/v1/projects"
    tags = ("projects",)

    @post("/", operation_id="createProject", status_code=HTTP_200_OK, summary="Create a project (seed 5.1.1)")
    async def create_project(
        self, db: NamedDependency[Database], data: JSONBody[schemas.ProjectCreate]
    ) -> schemas.ProjectCreatedResponse:
        async with db.session() as session:
            return schemas.ProjectCreatedResponse(data=await service.create(session, data))

    @get("/", operation_id="listProjects", summary="List projects, newest first (seed 5.1.2)")
    async def list_projects(
        self,
        db: NamedDependency[Database],
        page: Page = 1,
        size: Size = 10,
        q: Annotated[str | None, QueryParameter(max_length=200, description="name contains (any case)")] = None,
        status: Annotated[str | None, QueryParameter(pattern="^(active|paused|archived)$")] = None,
    ) -> schemas.ProjectPageResponse:
        async with db.session() as session:
            return schemas.ProjectPageResponse(data=await service.list_page(session, page, size, q, status))

    @get("/{project_key:str}", operation_id="getProject", summary="One project with its record count")
    async def get_project(
        self, db: NamedDependency[Database], project_key: ProjectKey
    ) -> schemas.ProjectDetailResponse:
        async with db.session() as session:
            return schemas.ProjectDetailResponse(data=await service.detail(session, project_key))

    @patch("/{project_key:str}", operation_id="updateProject", summary="Change some fields of a project")
    async def update_project(
        self, db: NamedDependency[Database], project_key: ProjectKey, data: JSONBody[schemas.ProjectPatch]
    ) -> schemas.ProjectDetailResponse:
        async with db.session() as session:
            return schemas.ProjectDetailResponse(data=await service.update(session, project_key, data))

    @put("/{project_key:str}", operation_id="replaceProject", summary="Replace a project's fields")
    async def replace_project(
        self, db: NamedDependency[Database], project_key: ProjectKey, data: JSONBody[schemas.ProjectReplace]
    ) -> schemas.ProjectDetailResponse:
        async with db.session() as session:
            return schemas.ProjectDetailResponse(data=await service.update(session, project_key, data))

    @delete(
        "/{project_key:str}",
        operation_id="deleteProject",
        status_code=HTTP_200_OK,
        summary="Delete a project with all its spans, records and analyses",
    )
    async def delete_project(
        self, db: NamedDependency[Database], project_key: ProjectKey
    ) -> schemas.ProjectDeletedResponse:
        async with db.session() as session:
            return schemas.ProjectDeletedResponse(data=await service.remove(session, project_key))

    @post(
        "/{project_key:str}/rotate-key",
        operation_id="rotateProjectKey",
        status_code=HTTP_200_OK,
        summary="Issue a new project key; the old one stops working",
    )
    async def rotate_key(self, db: NamedDependency[Database], project_key: ProjectKey) -> schemas.ProjectDetailResponse:
        async with db.session() as session:
            return schemas.ProjectDetailResponse(data=await service.rotate_key(session, project_key))
