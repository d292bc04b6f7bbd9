"""What test modules share: scripted and real servers (started by the tests, on 127.0.0.1),
factories for catalogs and judge set-ups, and per-stage record builders."""
