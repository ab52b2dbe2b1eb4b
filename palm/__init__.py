"""PALM: a portfolio of aligned language models, near-optimal for every weight vector.

The library every service uses; it holds no Celery and no gRPC code.
"""

__version__ = "0.1.0"
