async def test_health_ok_after_migrations(client) -> None:
    r = await client.get("/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


def test_live_server_health(live_server) -> None:
    import httpx

    r = httpx.get(live_server.url + "/health")
    assert r.status_code == 200
