"""Image-to-image mode's wire format, in one place for both suites: GeoTIFFs made and read with rasterio,
the plugin's request body, and its answer decoded and compared with the input's georeferencing.

rasterio is a core dependency; should it be missing, these functions raise MissingDependencyError naming
it, and nothing in tensor mode needs it.
"""

from geopool.geotiff.answer import (ANSWER_BANDS, ANSWER_DTYPE, ANSWER_NODATA, IOAnswer, answer_problems,  # noqa: I001
                                    decode_io_answer, georeferencing_problems, judge_io_answer)
from geopool.geotiff.raster import RasterFacts, RasterSpec, raster_facts, rasterio_module
from geopool.geotiff.request import DATA_FORMATS, OUT_DATA_FORMATS, io_request

__all__ = ["ANSWER_BANDS", "ANSWER_DTYPE", "ANSWER_NODATA", "DATA_FORMATS", "IOAnswer", "OUT_DATA_FORMATS",
           "RasterFacts", "RasterSpec", "answer_problems", "decode_io_answer", "georeferencing_problems",
           "io_request", "judge_io_answer", "raster_facts", "rasterio_module"]
