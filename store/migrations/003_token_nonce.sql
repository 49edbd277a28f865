-- Redeemed Privacy Pass tokens (SPEC §10–11), by their nonce, kept until their issuer key retires.
-- While an assign is pending the nonce names its reserved IP, so a retry with the same token gets
-- the same IP; the link is dropped when the token is spent or refused. This joins a one-time
-- token to an IP, never a subscription id: the service never sees one, and the issuer signed the
-- token blind. No time is kept.
CREATE TABLE token_nonce (
  nonce bytea PRIMARY KEY CHECK (octet_length(nonce) = 32),
  key_id bytea NOT NULL CHECK (octet_length(key_id) = 32),
  state text NOT NULL CHECK (state IN ('pending', 'refused', 'spent')),
  ip inet REFERENCES ip_pool (ip),
  refusals integer NOT NULL DEFAULT 0 CHECK (refusals >= 0),
  CHECK ((state = 'pending') = (ip IS NOT NULL))
);

CREATE INDEX token_nonce_key ON token_nonce (key_id);
CREATE INDEX token_nonce_ip ON token_nonce (ip) WHERE ip IS NOT NULL;
