"""ccctl: the command line and (with the daemon) the REST client of ccd."""
