# The compose deployment's backend and purgers (see shelf.vcl). The ACL is the private ranges
# compose networks use: the api and worker containers purge; nothing outside the host reaches
# Varnish's port, which compose publishes on 127.0.0.1 only.
backend shelf {
    .host = "api";
    .port = "8000";
}

acl shelf_purgers {
    "127.0.0.1";
    "10.0.0.0"/8;
    "172.16.0.0"/12;
    "192.168.0.0"/16;
}
