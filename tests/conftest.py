pytest_plugins = ["geopool.pytest_plugin", "pytester"]
