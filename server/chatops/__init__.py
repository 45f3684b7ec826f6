"""Two-way ChatOps: what people write to alertsleuth in their chat, and what it answers there.

`platforms/` verifies, decrypts and parses each platform's inbound requests into one `Inbound`, and
replies in the thread.
"""
