"""Names vulture (`make lint`, settings in pyproject.toml) would call unused that a framework
uses: each is read by name by gunicorn, Ansible, pytest, http.server, requests/urllib3, Selenium
or the Kubernetes client. Anything unused that is not here fails `make lint`: delete it, or,
when a framework does use it, add it here with who does."""

# gunicorn reads these settings from apps/common/gunicorn.conf.py by name.
wsgi_app
worker_class
keepalive
graceful_timeout
preload_app
worker_tmp_dir
control_socket_disable
forwarded_allow_ips
logger_class
errorlog
# gunicorn's worker and logger call these overrides (apps/common/worker.py), and the WSGI
# entry point `application` (apps/*/: gunicorn's wsgi_app names it).
_.access
req  # the logger's access(resp, req, environ, request_time) signature
_.write_error
_.nr_conns
_.on_client_socket_readable
_.murder_pending
application
# requests/urllib3 use these of the proxy's adapter and pools (apps/proxy/upstream.py).
ConnectionCls
_.pool_classes_by_scheme
_.request_url
# Ansible loads filter plugins through FilterModule().filters() (plugins/filter/).
FilterModule
_.filters
# pytest: module marks, hooks, fixtures requested only for what they set up.
pytestmark
pytest_collection_modifyitems
observed
istio
undeployed_at_end
# http.server's handlers and servers (tests/apps/apps_live.py, molecule/mesh_external/standin.py).
protocol_version
_.log_message
_.do_GET
_.daemon_threads
_.handle_error
# Selenium's options, the Kubernetes client's configuration, a context manager's __exit__.
_.binary_location
_.api_key
exc
