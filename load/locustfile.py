"""Locust entry point for geopool's /pooling load scenarios (the code lives in geopool.load).

    locust -f load/locustfile.py --headless --host http://127.0.0.1:8000 -u 8 -r 8 -t 60s
    locust -f load/locustfile.py --headless --host URL --scenario open-poisson --slo load/slo/example.toml
"""

from geopool.load.run.locustfile import PoolingUser, ScenarioShape

__all__ = ["PoolingUser", "ScenarioShape"]
