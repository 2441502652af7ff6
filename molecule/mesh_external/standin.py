"""Stand-in for raw.githubusercontent.com in mesh_external: HTTPS on :8443 (certificate from
/tls), answering GET of the series' file with a text naming what it saw (Host, SNI, path)."""

import http.server
import ssl

PATH = "/mcasperson/NodejsProxy/master/externalservice1.txt"


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        found = self.path == PATH
        sni = getattr(self.connection, "sni", None)
        text = (
            f"External service stand-in: {self.path} for Host {self.headers.get('Host')}"
            f" (SNI {sni}) over TLS"
            if found
            else f"not found: {self.path}"
        )
        body = text.encode()
        self.send_response(200 if found else 404)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def remember_sni(sock, server_name, _context):
    sock.sni = server_name


context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain("/tls/tls.crt", "/tls/tls.key")
context.sni_callback = remember_sni
server = http.server.ThreadingHTTPServer(("0.0.0.0", 8443), Handler)  # noqa: S104 (a pod)
server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
