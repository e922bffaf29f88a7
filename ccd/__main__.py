from ccd.daemon import main

main()
