"""A plain WSGI callable answering every request with one constant 700-byte JSON body: the server's
own ceiling (no Flask, no Shelf), the "bare" arm of loadtest.ceiling."""

BODY = b'{"pad": "' + b"x" * 689 + b'"}'
HEADERS = [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))]


def app(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]
