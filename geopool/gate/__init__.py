"""The release gate (``geopool gate``): conformance, then load, then one verdict, one report."""
