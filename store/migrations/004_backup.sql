-- Opaque DRT backups (SPEC §11 /v1/backup/<id>): the app chooses a random 32-byte id and encrypts
-- the blob itself; the service keeps at most 4 KiB and nothing else about it.
CREATE TABLE backup (
  id bytea PRIMARY KEY CHECK (octet_length(id) = 32),
  blob bytea NOT NULL CHECK (octet_length(blob) <= 4096)
);
