"""Dataset recipes: each module has ``build(..., root=None) -> dataset id`` and ``main(argv)``."""
