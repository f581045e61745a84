from rmdt.recipes.popgym import main

if __name__ == "__main__":
    main()
