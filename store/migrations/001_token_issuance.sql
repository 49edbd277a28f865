-- The issuer's record (SPEC §10): one token per subscription version (sub, did), with the SHA-256
-- of its TokenRequest so that the same request gets the same TokenResponse again. No time at all,
-- and no IP: the issuer never learns one.
CREATE TABLE token_issuance (
  sub text NOT NULL CHECK (length(sub) BETWEEN 1 AND 256),
  did bigint NOT NULL CHECK (did >= 0),
  token_request_sha256 bytea NOT NULL CHECK (octet_length(token_request_sha256) = 32),
  token_response bytea NOT NULL,
  PRIMARY KEY (sub, did)
);
