"""Small fake provider servers on 127.0.0.1 for outbound tests: the real client libraries talk to these."""
