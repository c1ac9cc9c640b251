"""Looking at logs: figures (:mod:`bagscope.viz.plots`), field series (:mod:`.series`) and the
run report (:mod:`.report`). Importing this package is cheap: Matplotlib and numpy are imported
by the functions that draw.
"""

from bagscope.viz.plots import plot_bev, plot_lidar_on_image, plot_series

__all__ = ["plot_bev", "plot_lidar_on_image", "plot_series"]
