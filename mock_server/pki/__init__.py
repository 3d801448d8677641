"""The test PKI and the signing code: certificates, CMS, PAdES, time stamps, revocation."""

from mock_server.pki import der_lengths

# Before any module here builds or parses a CMS, in the sandbox and in every signing worker.
der_lengths.install()
