"""Temporary credentials (STS): the gateway issues them (AssumeRole) and verifies them on every call.

`token` mints and opens the stateless SecurityToken and derives each temporary key's secret;
`grammar` reads a session policy; `keys` turns a verified token into the `AccessKey` the chain checks;
`assume` is the AssumeRole handler.
"""
