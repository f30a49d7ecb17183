-- New sessions welcome again (a swap that did not happen gives the live database back as it was).
ALTER DATABASE {database} WITH ALLOW_CONNECTIONS true
