from selfcorrect.cli import main

main()
