"""InvertedDoublePendulum-v5: LQR controller, noisy-controller and random episodes (rmdt.recipes.double_pendulum)."""
from rmdt.recipes.double_pendulum import main

if __name__ == "__main__":
    main()
