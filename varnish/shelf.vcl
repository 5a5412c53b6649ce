# Shelf's edge cache: Varnish 7 with varnish-modules (xkey, var). See the README, "Two cache layers".
#
# - Objects are stored only when Shelf tagged them (xkey, or Surrogate-Key copied into xkey), so
#   everything stored is purged by Shelf's writes; everything else is passed through.
# - PURGE / with xkey-purge (or xkey-softpurge): the tags Shelf's write made stale. Only the
#   addresses in shelf_purgers may purge.
# - A fetch that began before the latest purge may carry the state before that write: it is
#   delivered to the requests waiting for it but not stored (its tags were not in the cache when
#   the purge ran, so nothing else would ever drop it).
# - Requests with Authorization (or any method but GET and HEAD) pass.
# - TTL and grace come from Shelf's Cache-Control: max-age, and stale-while-revalidate as grace.
# - X-Cache is the edge's HIT / MISS / PASS; Shelf's own answer moves to X-Shelf-Cache.
#
# The deployment's backend `shelf` and ACL `shelf_purgers` live in shelf-backend.vcl (found on
# vcl_path): the compose one is beside this file; the tests write their own.
vcl 4.1;

import std;
import var;
import xkey;

include "shelf-backend.vcl";

sub vcl_init {
    var.global_set("shelf_purged_us", "0");
}

sub vcl_recv {
    if (req.method == "PURGE") {
        if (client.ip !~ shelf_purgers) {
            return (synth(403, "Forbidden"));
        }
        # Microseconds since 2023-11-14 (VCL integers have 15 digits; a REAL string has 3 decimals).
        set req.http.purged-us = std.integer(real=(std.real(time=now) - 1700000000.0) * 1000000.0);
        if (std.integer(req.http.purged-us, 0) > std.integer(var.global_get("shelf_purged_us"), 0)) {
            var.global_set("shelf_purged_us", req.http.purged-us);
        }
        if (req.http.xkey-purge) {
            set req.http.n-gone = xkey.purge(req.http.xkey-purge);
        } elsif (req.http.xkey-softpurge) {
            set req.http.n-gone = xkey.softpurge(req.http.xkey-softpurge);
        } else {
            return (synth(400, "xkey-purge or xkey-softpurge required"));
        }
        return (synth(200, "Purged " + req.http.n-gone));
    }
    if ((req.method != "GET" && req.method != "HEAD") || req.http.Authorization) {
        return (pass);
    }
    unset req.http.Cookie;
    return (hash);
}

sub vcl_backend_fetch {
    # As a string: vmod var keeps its INTs in 32 bits.
    var.set("fetch_started_us", "" + std.integer(real=(std.real(time=now) - 1700000000.0) * 1000000.0));
}

sub vcl_backend_response {
    if (beresp.http.Surrogate-Key && !beresp.http.xkey) {
        set beresp.http.xkey = beresp.http.Surrogate-Key;
    }
    if (beresp.http.X-Cache) {
        set beresp.http.X-Shelf-Cache = beresp.http.X-Cache;
        unset beresp.http.X-Cache;
    }
    if (bereq.uncacheable || !beresp.http.xkey || beresp.http.Vary == "*" || beresp.http.Set-Cookie) {
        return (pass(0s));
    }
    if (std.integer(var.get("fetch_started_us"), 0) <= std.integer(var.global_get("shelf_purged_us"), 0)) {
        return (pass(0s));
    }
    return (deliver);
}

sub vcl_deliver {
    if (obj.uncacheable) {
        set resp.http.X-Cache = "PASS";
    } elsif (obj.hits > 0) {
        set resp.http.X-Cache = "HIT";
    } else {
        set resp.http.X-Cache = "MISS";
    }
    unset resp.http.xkey;
    unset resp.http.Surrogate-Key;
    unset resp.http.n-gone;
}
