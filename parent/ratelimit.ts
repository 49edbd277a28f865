// Per-client token buckets for GET /v1/attestation (each costs an NSM call in the enclave).
// The client is the TCP peer. Buckets live in memory only, and their number is bounded: the
// least recently used bucket is dropped first, which at worst hands that client a fresh bucket.

export interface RateLimiterOptions {
  /** Tokens added per second. */
  ratePerSecond: number;
  /** Bucket size: the burst a client may spend at once. */
  burst: number;
  /** Buckets kept at most (default 10 000). */
  maxClients?: number;
  /** Monotonic clock in milliseconds (tests inject one). */
  now?: () => number;
}

interface Bucket {
  tokens: number;
  at: number;
}

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly rate: number;
  private readonly burst: number;
  private readonly maxClients: number;
  private readonly now: () => number;

  constructor(options: RateLimiterOptions) {
    if (!(options.ratePerSecond > 0) || !(options.burst >= 1)) throw new TypeError('rate must be > 0 and burst >= 1');
    this.rate = options.ratePerSecond / 1000;
    this.burst = options.burst;
    this.maxClients = options.maxClients ?? 10_000;
    this.now = options.now ?? (() => performance.now());
  }

  /** Takes one token for `client`; false means the request is refused (429). */
  take(client: string): boolean {
    const now = this.now();
    const bucket = this.buckets.get(client);
    let tokens = this.burst;
    if (bucket !== undefined) {
      tokens = Math.min(this.burst, bucket.tokens + (now - bucket.at) * this.rate);
      // Re-insert so that Map order is least recently used first.
      this.buckets.delete(client);
    } else if (this.buckets.size >= this.maxClients) {
      this.buckets.delete(this.buckets.keys().next().value!);
    }
    const allowed = tokens >= 1;
    this.buckets.set(client, { tokens: allowed ? tokens - 1 : tokens, at: now });
    return allowed;
  }

  get clients(): number {
    return this.buckets.size;
  }
}
