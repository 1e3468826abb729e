from litestar import Controller


class ProjectController(Controller):
    path = "/api/v1/projects"
