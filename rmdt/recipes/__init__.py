"""Dataset recipes: ``build(..., root=None) -> dataset id`` and a ``main(argv)`` command line each."""
