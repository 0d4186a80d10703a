from mailbridge.cli.app import main

main()
