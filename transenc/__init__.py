"""transenc: unsupervised sentence-pair modelling (Trans-Encoder) and a fast pair-scoring engine."""

__version__ = "0.1.0"
