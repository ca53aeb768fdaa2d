"""Benchmarks of the service against its own limits (`make bench`)."""
