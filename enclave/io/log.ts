// The enclave's only logger (SPEC §1: the enclave keeps no logs of tokens, IPs or subscription
// ids). One JSON line per event on stderr, with a fixed event name and only fields that cannot
// carry a secret: numbers and values from closed sets. The types refuse anything else at
// compile time, and `sanitize` drops it again at run time in case a cast slipped through.

import { isErrorCode, type ErrorCode } from '../../protocol/errors.js';
import { isOp, type Op } from '../../protocol/messages.js';
import { formatListenAddress, type ListenAddress } from './address.js';

export type Mode = 'development' | 'production';
export type StopSignal = 'SIGTERM' | 'SIGINT';
/** `workers`: no worker thread holds the keys any more, or replacements keep failing to start (pool.ts). */
export type CrashKind = 'exception' | 'rejection' | 'workers';
/** Why the server closed a connection that sent nothing wrong (issue #9). */
export type CloseCause = 'idle_timeout' | 'frame_timeout' | 'evicted' | 'over_capacity';
export type ClockState = 'trusted' | 'untrusted';

/** Why startup stopped, each with the one message an operator sees; never library text. */
export const STARTUP_FAILURES = {
  usage: 'usage: enclave --listen unix:PATH|tcp:HOST:PORT [--vsock PORT] [--dev DIR] [--idle-timeout-ms N] [--frame-timeout-ms N] [--max-connections N] [--workers N]',
  bad_listen_address: 'the --listen address is not unix:PATH or tcp:HOST:PORT',
  dev_refused: 'this is a production build: --dev (the NSM emulator) is refused',
  dev_state_unusable: 'the --dev directory or its srt-issuer.json cannot be read or written, or the file is invalid',
  issuer_config_invalid: 'enclave/issuers/srt-issuer.jwks.json or enclave/issuers/config.json is missing or invalid',
  nsm_unavailable: 'the Nitro Security Module (/dev/nsm) is not available; outside a Nitro Enclave use --dev DIR',
  listen_failed: 'cannot listen on the --listen address (in use, not permitted, or a non-socket file is there), or on --vsock (which needs --listen unix:PATH)',
  service_failed: 'the enclave service could not start',
} as const;
export type StartupFailure = keyof typeof STARTUP_FAILURES;

declare const safeText: unique symbol;
/** Text that was checked to be non-sensitive (made only by the functions below). */
export type SafeText = string & { readonly [safeText]: true };

const VERSION_PATTERN = /^[0-9A-Za-z.+-]{1,64}$/;

/** A build version string (e.g. "0.1.0"); anything else is our own misuse. */
export function safeVersion(version: string): SafeText {
  if (!VERSION_PATTERN.test(version)) throw new TypeError('version is not a plain version string');
  return version as SafeText;
}

/** A listen address is operator configuration, not user data: it may be logged. */
export function safeAddress(address: ListenAddress): SafeText {
  return formatListenAddress(address) as SafeText;
}

/** The closed set of events and, for each, the only fields it may carry. */
export interface EventFields {
  /** The process is up; mode says whether the NSM is emulated. */
  started: { mode: Mode; version: SafeText; workers?: number };
  listening: { address: SafeText };
  /** A request was answered with an error (never its input, only what failed and how fast). */
  request_failed: { op?: Op; code: ErrorCode; ms: number };
  /** A connection sent something that is not the protocol and was closed. */
  connection_rejected: { code: ErrorCode };
  /**
   * A connection was closed to free its socket: idle too long, a frame stopped arriving, evicted
   * for a new one at the connection cap, or a new one refused because all others are busy.
   */
  connection_closed: { cause: CloseCause; connections: number };
  /** A connection hit the in-flight cap and stopped being read until requests complete. */
  backpressure: { inFlight: number };
  stopping: { signal: StopSignal; connections: number };
  stopped: { ms: number };
  startup_failed: { reason: StartupFailure };
  /** The VSOCK bridge (socat) died; the enclave exits rather than run unreachable. */
  bridge_exited: Record<string, never>;
  /** A bug escaped every handler; the process exits (in the enclave: reboots with a new boot key). */
  crashed: { kind: CrashKind };
  /** SPEC §3: the clock was compared with the NSM's attestation timestamp. */
  clock_checked: { clock: ClockState };
  /** A worker thread ended (a bug, or it was killed); the requests it held were answered `internal`, and another takes its place. */
  worker_exited: { exitCode: number; inFlight: number };
}
export type LogEvent = keyof EventFields;

export interface Logger {
  event<E extends LogEvent>(name: E, fields: EventFields[E]): void;
}

const MODES: readonly string[] = ['development', 'production'];
const SIGNALS: readonly string[] = ['SIGTERM', 'SIGINT'];
const CRASH_KINDS: readonly string[] = ['exception', 'rejection', 'workers'];
const CLOSE_CAUSES: readonly string[] = ['idle_timeout', 'frame_timeout', 'evicted', 'over_capacity'];
const ADDRESS_PATTERN = /^(unix|tcp):[-\w./[\]:]{1,200}$/;

/** Run-time twin of EventFields: what each field name may hold. */
const FIELD_CHECKS: Readonly<Record<string, (value: unknown) => boolean>> = {
  mode: (v) => typeof v === 'string' && MODES.includes(v),
  signal: (v) => typeof v === 'string' && SIGNALS.includes(v),
  kind: (v) => typeof v === 'string' && CRASH_KINDS.includes(v),
  cause: (v) => typeof v === 'string' && CLOSE_CAUSES.includes(v),
  clock: (v) => v === 'trusted' || v === 'untrusted',
  version: (v) => typeof v === 'string' && VERSION_PATTERN.test(v),
  address: (v) => typeof v === 'string' && ADDRESS_PATTERN.test(v),
  op: isOp,
  code: isErrorCode,
  reason: (v) => typeof v === 'string' && Object.hasOwn(STARTUP_FAILURES, v),
  ms: isCount,
  inFlight: isCount,
  connections: isCount,
  workers: isCount,
  exitCode: isCount,
};

function isCount(value: unknown): boolean {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0;
}

const EVENTS: ReadonlySet<string> = new Set<LogEvent>([
  'started', 'listening', 'request_failed', 'connection_rejected', 'connection_closed', 'backpressure',
  'stopping', 'stopped', 'startup_failed', 'bridge_exited', 'crashed', 'clock_checked', 'worker_exited',
]);

/** Keeps only the fields whose name and value pass FIELD_CHECKS; durations are rounded. */
export function sanitize(fields: object): Record<string, string | number> {
  const out: Record<string, string | number> = {};
  for (const [key, value] of Object.entries(fields)) {
    const check = FIELD_CHECKS[key];
    if (check === undefined || !check(value)) continue;
    out[key] = typeof value === 'number' ? Math.round(value * 10) / 10 : (value as string);
  }
  return out;
}

/** A logger writing one JSON line per event; `write` defaults to stderr (stdout stays empty). */
export function createLogger(write: (line: string) => void = (line) => process.stderr.write(line)): Logger {
  return {
    event(name, fields) {
      if (!EVENTS.has(name)) return;
      const line: Record<string, string | number> = { time: new Date().toISOString(), event: name, ...sanitize(fields) };
      if (name === 'startup_failed') {
        const reason = (fields as EventFields['startup_failed']).reason;
        if (Object.hasOwn(STARTUP_FAILURES, reason)) line['message'] = STARTUP_FAILURES[reason];
      }
      write(`${JSON.stringify(line)}\n`);
    },
  };
}
