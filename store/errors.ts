// The store's failures (SPEC §10–11 storage): a closed set of codes with fixed messages. A
// database error is reduced to its SQLSTATE: PostgreSQL's own texts quote the values of the
// row (`Key (ip)=(…) already exists`), and no IP, subscription id or nonce may reach a log.

export type StoreErrorCode =
  | 'store_unavailable'
  | 'store_busy'
  | 'store_failed'
  | 'migration_unknown'
  | 'migration_changed'
  | 'range_invalid'
  | 'range_overlaps'
  | 'range_too_large'
  | 'range_unknown'
  | 'range_busy';

const STORE_MESSAGES: Readonly<Record<StoreErrorCode, string>> = {
  store_unavailable: 'the database cannot be reached',
  store_busy: 'the transaction kept conflicting with others; try again',
  store_failed: 'the database refused the statement',
  migration_unknown: 'the database has a migration this code does not know; run a newer release',
  migration_changed: 'an applied migration differs from its file; migrations never change once released',
  range_invalid: 'a range or exclusion is not a CIDR block with its host bits zero',
  range_overlaps: 'the range overlaps a range already in the pool',
  range_too_large: 'the range has more addresses than one range may add',
  range_unknown: 'no such range in the pool',
  range_busy: 'the range still has reserved or quarantined addresses',
};

export class StoreError extends Error {
  override readonly name = 'StoreError';
  constructor(
    readonly code: StoreErrorCode,
    /** The SQLSTATE of the database error behind this one, when there was one. */
    readonly sqlState?: string,
  ) {
    super(STORE_MESSAGES[code]);
  }
}

/** SQLSTATEs after which running the whole transaction again can succeed. */
const RETRYABLE = new Set(['40001', '40P01']);

export function sqlStateOf(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

export function isRetryable(error: unknown): boolean {
  return RETRYABLE.has(sqlStateOf(error) ?? '');
}

/**
 * A database or connection error as a StoreError (its text dropped); anything else, such as an
 * error the caller's own transaction callback threw, is returned unchanged.
 */
export function toStoreError(error: unknown): unknown {
  if (error instanceof StoreError) return error;
  const sqlState = sqlStateOf(error);
  if (sqlState !== undefined) {
    // Class 08 connection exception, 57P operator intervention, 53 insufficient resources.
    const unavailable = sqlState.startsWith('08') || sqlState.startsWith('57P') || sqlState.startsWith('53');
    return new StoreError(unavailable ? 'store_unavailable' : 'store_failed', sqlState);
  }
  const errno = (error as { code?: unknown } | null)?.code;
  if (typeof errno === 'string' && /^E[A-Z]+$/.test(errno)) return new StoreError('store_unavailable');
  if (error instanceof Error && /Connection terminated|connection error/i.test(error.message)) {
    return new StoreError('store_unavailable');
  }
  return error;
}
