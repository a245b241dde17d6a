"""porchtest: what the system tests are made of.

conftest.py holds only the pytest fixtures and re-exports the names
below, so test files keep writing `from conftest import Gateway, ...`.

  paths     where the binaries are, PORCH_BUILD and PORCH_ASAN
  wait      wait_until: a condition with a deadline, never a bare sleep
  ports     free_port, wait_port
  procs     Proc, Procs (started processes, their logs), rss_kib,
            nofile_limits, nofile
  certs     keygen, CA (certificates minted at run time)
  daemons   Gateway, Agent (porch-gateway and porch-agent configs)
  nginx     Nginx (TLS + HTTP), PlainNginx (HTTP + h2c), nginx_conf
  backends  Sink (a TCP backend that counts and tells how it ended)
  visit     what visitors do: curl, https_get, tls_visit, http_status,
            big_file, sha256, slow_download, finish, admin_status, ...
  dns       Bind (BIND 9 as the authoritative server of example.test)
  acme      Pebble (the ACME test CA)
"""
