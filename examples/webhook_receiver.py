"""A webhook receiver that checks Ponder's signatures, with the standard library only.

    python3 examples/webhook_receiver.py --port 8911 --secret whsec_... [--count 1]

It answers 204 to every delivery whose signature checks out (and 401 otherwise), prints
one line per verified event, and exits after ``--count`` of them. The signature is
Standard Webhooks': for each ``v1,<signature>`` in the ``webhook-signature`` header,
``signature`` = base64(HMAC-SHA256(key, f"{webhook-id}.{webhook-timestamp}.{body}")),
where ``key`` is the base64-DECODED text after ``whsec_`` in your secret. Deliveries
older or newer than five minutes are refused, so a captured request cannot be replayed.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

TOLERANCE_SECONDS = 300


def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """Whether ``body`` with these headers was signed with ``secret`` (``whsec_...``)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    msg_id = headers.get("webhook-id", "")
    stamp = headers.get("webhook-timestamp", "")
    if not stamp.isdigit() or abs(time.time() - int(stamp)) > TOLERANCE_SECONDS:
        return False
    signed = f"{msg_id}.{stamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    for entry in headers.get("webhook-signature", "").split():
        version, _, signature = entry.partition(",")
        if version == "v1" and hmac.compare_digest(signature, expected):
            return True
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8911)
    parser.add_argument("--secret", required=True, help="your tenant's whsec_... secret")
    parser.add_argument("--count", type=int, default=1, help="exit after this many events")
    args = parser.parse_args()
    received: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            if not verify(args.secret, headers, body):
                self.send_response(401)
                self.end_headers()
                return
            self.send_response(204)
            self.end_headers()
            event = json.loads(body)
            data = event["data"]
            print(f"verified {event['type']} for {data['id']}: {data.get('status')}", flush=True)
            received.append(headers["webhook-id"])

        def log_message(self, format: str, *values: object) -> None:
            pass  # one line per event is enough

    server = HTTPServer(("127.0.0.1", args.port), Handler)
    while len(received) < args.count:
        server.handle_request()
    server.server_close()


if __name__ == "__main__":
    main()
