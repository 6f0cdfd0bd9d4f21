"""The tests' PostgreSQL server: host/bench/pgserver.py (`hiplevel bench clinic --postgres` starts the
same one at run time), re-exported here for the fixtures."""
from host.bench.pgserver import PASSWORD, USER, PgServer, bin_dir, free_port  # noqa: F401
