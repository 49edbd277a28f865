-- The DIP service's pool (SPEC §11): ranges configured as CIDR blocks (IPv4 and IPv6), one row per
-- usable address. Reservations and quarantines end on a day number (days since 1970-01-01 UTC),
-- never a finer time (SPEC §10). A draining range hands out no new address.
CREATE TABLE ip_range (
  cidr cidr PRIMARY KEY,
  draining boolean NOT NULL DEFAULT false
);

-- ip is a host address (/32 or /128), so equality with a client's text needs no masklen care.
-- The state and its day go together: reserved has reserved_until_day (the last day it holds),
-- quarantined has quarantine_until_day (the first day it may be free again).
CREATE TABLE ip_pool (
  ip inet PRIMARY KEY CHECK (masklen(ip) = CASE family(ip) WHEN 4 THEN 32 ELSE 128 END),
  range cidr NOT NULL REFERENCES ip_range (cidr),
  state text NOT NULL DEFAULT 'free' CHECK (state IN ('free', 'reserved', 'quarantined')),
  reserved_until_day integer CHECK ((state = 'reserved') = (reserved_until_day IS NOT NULL)),
  quarantine_until_day integer CHECK ((state = 'quarantined') = (quarantine_until_day IS NOT NULL))
);

CREATE INDEX ip_pool_free ON ip_pool (range) WHERE state = 'free';
CREATE INDEX ip_pool_reserved ON ip_pool (reserved_until_day) WHERE state = 'reserved';
CREATE INDEX ip_pool_quarantined ON ip_pool (quarantine_until_day) WHERE state = 'quarantined';
