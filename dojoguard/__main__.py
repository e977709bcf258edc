from dojoguard.cli import main

main()
