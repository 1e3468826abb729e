from litestar import Controller


class PerformanceController(Controller):
    path = "/api/v1/performance"
