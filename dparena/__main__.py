from dparena.cli import main

main()
