"""InvertedDoublePendulum-v5: LQR controller, noisy-controller and random episodes (rmdt.recipes.double_pendulum)."""
from rmdt.recipes.double_pendulum import build, main  # noqa: F401  (build: for recipe loaders that read this file)

if __name__ == "__main__":
    main()
