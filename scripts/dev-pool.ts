// The development pool of the DIP service (SPEC §8, §11), shared by `make dev` and `make demo`:
// documentation addresses only (RFC 5737 TEST-NET-2, RFC 3849), never routable ones, with the
// IPv4 block's network and broadcast addresses left out.

export const DEV_RANGES = ['198.51.100.0/24', '2001:db8:d1::/120'] as const;
export const DEV_EXCLUDES = ['198.51.100.0/32', '198.51.100.255/32'] as const;
