"""The fakes' loopback HTTP server, `FakeAPI` with its `Request`, `Answer` and `Handler`: it lives in
exporter/fake_api.py (the demo's fake Slack needs it too, and exporter/ ships without tests/) and is
re-exported here, so the fakes keep importing it from `tests.fakes.api`."""

from exporter.fake_api import Answer, FakeAPI, Handler, Request

__all__ = ["Answer", "FakeAPI", "Handler", "Request"]
