"""Offline scoring of image archives on Ray Data: the service's own pipeline, one Parquet row per face."""
